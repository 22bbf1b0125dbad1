"""Vectors of an unfinished run, kept so that the next delivery resumes instead of paying again.

A checkpoint is a folder of parts, `{OUTPUT_PREFIX}_checkpoints/{K}/{run}-000001.jsonl`, each holding
the vectors embedded since the previous part; every run names its own parts, so overlapping runs of
one document add to the checkpoint rather than overwrite each other. Object Storage has no append,
and rewriting one growing object would cost O(n^2) bytes on a large document; parts cost O(n).
Parts are written every `flush_every` new vectors and when a run stops early, and deleted once the
records are complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Container

from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.document_keys import DocumentKeys
from embedding_pipeline.outputs.lines import checkpoint_line, known_vector
from embedding_pipeline.stages.vectorize import KnownVector


class Checkpoint:
    def __init__(
        self,
        storage: ObjectStorage,
        keys: DocumentKeys,
        *,
        model: str,
        dimensions: int,
        flush_every: int = 200,
    ) -> None:
        self._storage = storage
        self._keys = keys
        self._model = model
        self._dimensions = dimensions
        self._flush_every = flush_every
        self._pending: list[bytes] = []
        self._run = uuid.uuid4().hex[:8]
        self._parts = 0
        self.saved = 0

    async def load(self, known: dict[str, KnownVector], wanted: Container[str] | None) -> int:
        """Add the vectors of earlier parts to `known`; return how many were found."""
        found = 0
        keys = self._keys
        async for info in self._storage.list_objects(keys.bucket, keys.checkpoints):
            if not keys.is_checkpoint_part(info.key):
                continue
            # Paid for by an earlier invocation of this run: the manifest bills them, not "reused".
            found += await read_known_vectors(
                self._storage,
                keys.bucket,
                info.key,
                model=self._model,
                dimensions=self._dimensions,
                wanted=wanted,
                known=known,
                paid=True,
            )
        return found

    async def add(self, text_hash: str, embedding: Embedding) -> None:
        self._pending.append(
            checkpoint_line(
                text_hash=text_hash, vector=embedding.vector, tokens=embedding.tokens, model=self._model
            )
        )
        if len(self._pending) >= self._flush_every:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending:
            return
        # Swap before awaiting: other workers keep adding while this part uploads.
        lines, self._pending = self._pending, []
        self._parts += 1
        key = self._keys.checkpoint_part(self._run, self._parts)
        await self._storage.put(self._keys.bucket, key, b"".join(lines), content_type="application/x-ndjson")
        self.saved += len(lines)

    async def discard(self) -> None:
        self._pending = []
        await delete_checkpoint(self._storage, self._keys)
        self._parts = 0


async def delete_checkpoint(storage: ObjectStorage, keys: DocumentKeys) -> None:
    """Delete this document's checkpoint, by exact names: the folder's listing also holds the
    checkpoints of documents whose keys continue this one's with `/` (`x` and `x/y.md`)."""
    async for info in storage.list_objects(keys.bucket, keys.checkpoints):
        if keys.owns_checkpoint_key(info.key):
            await storage.delete(keys.bucket, info.key)


async def read_known_vectors(
    storage: ObjectStorage,
    bucket: str,
    key: str,
    *,
    model: str,
    dimensions: int,
    wanted: Container[str] | None,
    known: dict[str, KnownVector],
    paid: bool = False,
) -> int:
    """Stream a records or checkpoint object, keeping only vectors this run needs."""
    found = 0
    async for line in storage.iter_lines(bucket, key):
        hit = known_vector(line, model=model, dimensions=dimensions, wanted=wanted)
        if hit is not None and hit[0] not in known:
            known[hit[0]] = KnownVector(hit[1], hit[2], paid=paid)
            found += 1
    return found
