"""What a re-upload takes from the records it replaces, read as streams and never whole.

Two passes over the previous records object:
- before chunking, each chunk's text summarised (`PreviousChunks`: first characters, length, hash),
  so that the new chunking keeps the chunks still found in the document;
- while the new records are written, the vectors of the chunks kept, in document order as the
  writer reaches them (`PreviousVectors.take`). The new document mostly keeps the old order, so the
  reader rarely runs ahead, and memory holds a few vectors, not all of them: a 20 MB document's
  11,500 vectors would cost more than its text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Container

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.lines import known_vector, read_line
from embedding_pipeline.stages.documents import PreviousChunks
from embedding_pipeline.stages.vectorize import KnownVector, content_hash

log = get_logger()


async def read_previous_chunks(
    storage: ObjectStorage, bucket: str, key: str, *, model: str, dimensions: int
) -> PreviousChunks:
    """The chunks of a records object made with `model` into vectors of `dimensions` (an absent
    object: none)."""
    previous = PreviousChunks(content_hash)
    async for line in storage.iter_lines(bucket, key):
        record = read_line(line, model=model)
        if record is None or record.text is None or len(record.embedding) != dimensions:
            continue  # damaged (not trusted), another model's, or a line without a chunk
        try:
            previous.add(record.text, record.content_hash)
        except ValueError:
            continue  # a content_hash that is no SHA-256: damaged too
    return previous


class PreviousVectors:
    """The previous records' vectors, taken one at a time in the order the new records need them."""

    def __init__(
        self,
        storage: ObjectStorage,
        bucket: str,
        key: str,
        *,
        model: str,
        dimensions: int,
        holds: Container[str],
    ) -> None:
        self._storage, self._bucket, self._key, self._model = storage, bucket, key, model
        self._dimensions = dimensions
        self._holds = holds  # the hashes the records were seen to hold (PreviousChunks.hashes())
        self._lines: AsyncIterator[bytes] | None = None
        self._wanted: set[str] = set()
        self._ahead: dict[str, KnownVector] = {}  # read past on the way to an earlier one
        self.largest_ahead = 0  # how far the reader ran ahead at most: the memory it took

    def holds(self, text_hash: str) -> bool:
        return text_hash in self._holds

    def want(self, text_hash: str) -> None:
        self._wanted.add(text_hash)

    async def take(self, text_hash: str) -> KnownVector | None:
        """The vector of `text_hash`, or None if the records no longer hold it (they changed)."""
        if (hit := self._ahead.pop(text_hash, None)) is not None:
            self._wanted.discard(text_hash)
            return hit
        for _attempt in range(2):
            try:
                return await self._read_to(text_hash)
            except StorageError as exc:
                # The stream stayed open while vectors were embedded, and broke: read it again from
                # the start (what was taken is no longer wanted, so it is passed over).
                log.info("previous_records_reopened", reason=str(exc))
                await self.aclose()
        self._wanted.discard(text_hash)
        return None

    async def _read_to(self, text_hash: str) -> KnownVector | None:
        if self._lines is None:
            self._lines = aiter(self._storage.iter_lines(self._bucket, self._key))
        async for line in self._lines:
            found = known_vector(line, model=self._model, dimensions=self._dimensions, wanted=self._wanted)
            if found is None or found[0] in self._ahead:
                continue
            vector = KnownVector(found[1], found[2])
            if found[0] == text_hash:
                self._wanted.discard(text_hash)
                return vector
            self._ahead[found[0]] = vector
            self.largest_ahead = max(self.largest_ahead, len(self._ahead))
        self._wanted.discard(text_hash)
        return None

    async def aclose(self) -> None:
        """Let go of the stream (what was read ahead stays, for a reopened one)."""
        closing = getattr(self._lines, "aclose", None)
        self._lines = None
        if closing is not None:
            await closing()
