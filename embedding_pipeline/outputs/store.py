"""Reading and writing outputs in Object Storage: the one owner of what lands under OUTPUT_PREFIX.

The order is the contract. Records are written whole (a failed upload leaves the previous records in
place) and only then the manifest that vouches for them, naming the ETag of the records object and
of the source bytes they were made from: a manifest whose records or source have moved on since is
stale, whoever raced whom. The manifest is written conditionally (If-Match the version this run
started from, If-None-Match when there was none), so a run that lost a race never overwrites the
winner's manifest. The checkpoint and an earlier error record go once a manifest stands. Parking
writes only the error record: previous outputs are replaced by complete new ones, never deleted
because a new version failed. Every small JSON output is read with one size cap and one validation
path: an unreadable one counts as absent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Container
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.errors import DocumentTooLarge
from embedding_pipeline.outputs.checkpoints import Checkpoint, delete_checkpoint
from embedding_pipeline.outputs.claims import DocumentClaim
from embedding_pipeline.outputs.document_keys import DocumentKeys
from embedding_pipeline.outputs.layout import OutputKey, OutputLayout
from embedding_pipeline.outputs.models import (
    ErrorRecord,
    IndexPending,
    Manifest,
    MessageErrorRecord,
    Recipe,
    SourceRef,
)
from embedding_pipeline.outputs.previous import PreviousVectors, read_previous_chunks
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.stages.documents import PreviousChunks

SMALL_OUTPUT_MAX_BYTES = 1024 * 1024  # manifests, error records, reports, a sweep's state
_JSON = "application/json"

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class DocumentStatus:
    state: Literal["embedded", "parked", "in_progress"]
    manifest: Manifest | None = None
    error: ErrorRecord | None = None


class DocumentOutputs:
    """The outputs of one document."""

    def __init__(self, storage: ObjectStorage, keys: DocumentKeys) -> None:
        self._storage = storage
        self.keys = keys

    async def manifest(self) -> Manifest | None:
        return await _read_model(self._storage, self.keys.bucket, self.keys.manifest, Manifest)

    async def manifest_version(self) -> tuple[Manifest | None, str | None]:
        """The manifest and the ETag of the object read (for a conditional replacement); an
        unreadable manifest still has an ETag, so that it can be replaced."""
        try:
            found = await self._storage.get_with_info(
                self.keys.bucket, self.keys.manifest, max_bytes=SMALL_OUTPUT_MAX_BYTES
            )
        except DocumentTooLarge:
            info = await self._storage.head(self.keys.bucket, self.keys.manifest)
            return None, None if info is None else info.etag
        if found is None:
            return None, None
        data, info = found
        return parse_output(data, Manifest), info.etag

    async def records_etag(self) -> str | None:
        """The ETag of the records object as it stands (a lost race can overwrite it); None if absent."""
        info = await self._storage.head(self.keys.bucket, self.keys.records)
        return None if info is None else info.etag

    async def manifest_etag(self) -> str | None:
        info = await self._storage.head(self.keys.bucket, self.keys.manifest)
        return None if info is None else info.etag

    async def error_record(self) -> ErrorRecord | None:
        return await _read_model(self._storage, self.keys.bucket, self.keys.error, ErrorRecord)

    async def status(self) -> DocumentStatus | None:
        """Parked (the newest version failed; an older manifest may still stand beside the error
        record), embedded (a manifest stands), in progress (a checkpoint), or None: no outputs."""
        manifest = await self.manifest()
        if (error := await self.error_record()) is not None:
            return DocumentStatus("parked", manifest=manifest, error=error)
        if manifest is not None:
            return DocumentStatus("embedded", manifest=manifest)
        async for info in self._storage.list_objects(self.keys.bucket, self.keys.checkpoints):
            if self.keys.owns_checkpoint_key(info.key):  # not a checkpoint of `{K}/...`
                return DocumentStatus("in_progress")
        return None

    async def previous_chunks(self, recipe: Recipe) -> PreviousChunks:
        """The chunks of the current records made with `model`, summarised (outputs/previous.py)."""
        keys = self.keys
        return await read_previous_chunks(
            self._storage, keys.bucket, keys.records, model=recipe.model, dimensions=recipe.dimensions
        )

    def previous_vectors(self, recipe: Recipe, holds: Container[str]) -> PreviousVectors:
        """The current records' vectors, to be read one at a time as the new records need them."""
        keys = self.keys
        return PreviousVectors(
            self._storage,
            keys.bucket,
            keys.records,
            model=recipe.model,
            dimensions=recipe.dimensions,
            holds=holds,
        )

    def claim(self, *, by: str, version: str | None) -> DocumentClaim:
        return DocumentClaim(self._storage, self.keys, by=by, version=version)

    def checkpoint(self, recipe: Recipe) -> Checkpoint:
        return Checkpoint(self._storage, self.keys, model=recipe.model, dimensions=recipe.dimensions)

    @asynccontextmanager
    async def writing_records(
        self, *, record_id: str, source: SourceRef, recipe: Recipe, metadata: dict[str, Any]
    ) -> AsyncIterator[RecordsSink]:
        """Stream records into a new records object; it replaces the old one only if the block ends
        normally (a failure aborts the upload and the previous records stay in place)."""
        keys = self.keys
        async with self._storage.open_writer(
            keys.bucket, keys.records, content_type="application/x-ndjson"
        ) as writer:
            yield RecordsSink(
                writer, keys, record_id=record_id, source=source, recipe=recipe, metadata=metadata
            )

    async def complete(self, manifest: Manifest, checkpoint: Checkpoint, *, replacing: str | None) -> bool:
        """The records are written: the manifest that vouches for them, then the cleanup.

        `replacing` is the ETag of the manifest this run started from (None: there was none). False if
        another run wrote the manifest meanwhile: its manifest stands, and if the records it vouches
        for were overwritten since, their ETag no longer matches and reconcile redoes the document.
        """
        body = manifest.model_dump_json(indent=2).encode()
        written = await self._storage.put(
            self.keys.bucket,
            self.keys.manifest,
            body,
            content_type=_JSON,
            if_none_match=replacing is None,
            if_match=replacing,
        )
        if written is None:
            return False
        await checkpoint.discard()
        await self._storage.delete(self.keys.bucket, self.keys.error)
        return True

    async def clear_error(self) -> None:
        await self._storage.delete(self.keys.bucket, self.keys.error)

    async def park(self, record: ErrorRecord) -> None:
        """Write the error record. Previous records and manifest stay: they describe an older version
        of the source, and the manifest's source ETag says so (reconcile sees the document as parked).
        An inline text kept for reconcile goes: it can never succeed either."""
        await _write_json(self._storage, self.keys.bucket, self.keys.error, record)
        await self._storage.delete(self.keys.bucket, self.keys.submission)

    async def mark_for_index(self, record: IndexPending) -> None:
        """The vector index could not take the current records: reconcile writes them."""
        await _write_json(self._storage, self.keys.bucket, self.keys.index_pending, record)

    async def unmark_for_index(self) -> None:
        await self._storage.delete(self.keys.bucket, self.keys.index_pending)

    async def save_submission(self, body: str) -> None:
        """Keep an inline text beside its checkpoint: reconcile finishes it if nobody else does."""
        await self._storage.put(self.keys.bucket, self.keys.submission, body.encode(), content_type=_JSON)

    async def submission(self) -> bytes | None:
        return await _read_small(self._storage, self.keys.bucket, self.keys.submission)

    async def remove(self) -> None:
        """Every output of the document: its source is gone."""
        storage, keys = self._storage, self.keys
        for key in (keys.manifest, keys.records, keys.error, keys.index_pending, keys.claim, keys.ocr):
            await storage.delete(keys.bucket, key)
        await delete_checkpoint(storage, keys)


class BucketOutputs:
    """The outputs of one output bucket, and what belongs to no document: reports, parked messages."""

    def __init__(self, storage: ObjectStorage, layout: OutputLayout) -> None:
        self._storage = storage
        self.layout = layout

    def document(self, key: str) -> DocumentOutputs:
        return DocumentOutputs(self._storage, self.layout.document(key))

    def inline(self, record_id: str) -> DocumentOutputs:
        return DocumentOutputs(self._storage, self.layout.inline(record_id))

    async def listing(self) -> AsyncIterator[tuple[ObjectInfo, OutputKey]]:
        """Every output object with what it is; objects under the prefix that are no output are skipped."""
        async for info in self._storage.list_objects(self.layout.bucket, self.layout.prefix):
            if (parsed := self.layout.parse(info.key)) is not None:
                yield info, parsed

    async def write_report(self, started_at: str, report: dict[str, Any]) -> str:
        key = self.layout.report(started_at)
        await self._put(key, json.dumps(report, indent=2).encode())
        return key

    async def read_report(self, key: str) -> dict[str, Any] | None:
        data = await self._read(key)
        try:
            report = json.loads(data) if data else None
        except ValueError:
            return None
        return report if isinstance(report, dict) else None

    async def park_refused(self, record: ErrorRecord, *, key: str) -> str:
        """The error record of the source `key`, which cannot have outputs, where it fits."""
        where = self.layout.refusal(key)
        await _write_json(self._storage, self.layout.bucket, where, record)
        return where

    async def unpark_refused(self, key: str) -> None:
        await self._storage.delete(self.layout.bucket, self.layout.refusal(key))

    async def park_message(self, record: MessageErrorRecord) -> str:
        key = self.layout.queue_error(record.message_id)
        await _write_json(self._storage, self.layout.bucket, key, record)
        return key

    async def _read(self, key: str) -> bytes | None:
        return await _read_small(self._storage, self.layout.bucket, key)

    async def _put(self, key: str, body: bytes) -> None:
        await self._storage.put(self.layout.bucket, key, body, content_type=_JSON)


async def _read_model(storage: ObjectStorage, bucket: str, key: str, model: type[Model]) -> Model | None:
    return parse_output(await _read_small(storage, bucket, key), model)


def parse_output(data: bytes | None, model: type[Model]) -> Model | None:
    """A JSON output read back; an absent, empty or damaged one is None, never trusted half-way."""
    if not data:
        return None
    try:
        return model.model_validate_json(data)
    except ValidationError:
        return None


async def _read_small(storage: ObjectStorage, bucket: str, key: str) -> bytes | None:
    """A small JSON output's bytes; None if absent or too large to be one of ours."""
    try:
        return await storage.get(bucket, key, max_bytes=SMALL_OUTPUT_MAX_BYTES)
    except DocumentTooLarge:
        return None


async def _write_json(storage: ObjectStorage, bucket: str, key: str, value: BaseModel) -> None:
    body = value.model_dump_json(indent=2).encode()
    await storage.put(bucket, key, body, content_type=_JSON)
