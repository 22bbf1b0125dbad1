"""Keeping the vector index in step with the bucket as it changes: the records are the truth, the
index follows.

- A manifest stands (`follow_manifest`): the records it vouches for are read back from the bucket,
  as a stream (rows.py), and replace the document's rows in one transaction. If the index fails, the
  outputs in the bucket stand as written and the document is marked (`_index/{K}.json`) for
  reconcile (repair.py).
- A source is deleted (`forget_document`): its rows go; if the index fails, reconcile sees rows
  without a manifest and removes them.

A write checks, just before its commit, that the manifest still vouches for the records it read:
whichever of two racing writers commits last, the rows are those of the manifest that stands, or
the next reconcile sees the records ETag differ and writes them again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import StorageError, VectorIndexError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import IndexPending, Manifest, utc_now
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.redact import redact
from embedding_pipeline.vector_index.postgres import IndexRow, VectorIndex
from embedding_pipeline.vector_index.rows import records_rows

log = get_logger()

# "partial": written without the records lines the index cannot take (damaged, or a vector of
# another length), which the repair's report counts (`written_partly`), never as written whole.
IndexOutcome = Literal["indexed", "partial", "pending", "stale"]


async def follow_manifest(
    index: VectorIndex,
    storage: ObjectStorage,
    outputs: DocumentOutputs,
    manifest: Manifest,
    *,
    deadline: Deadline,
) -> IndexOutcome:
    """The document's new records into the index; "pending" (marked for reconcile) if that failed,
    whatever failed: the outputs in the bucket are complete, and nothing here may undo them."""
    try:
        async with asyncio.timeout(max(deadline.remaining(), 1.0)):
            return await write_document(index, storage, outputs, manifest)
    except Exception as exc:
        reason = failure_reason(exc)
        log.error("index_write_failed", document=outputs.keys.document, reason=reason)
        await _mark(outputs, manifest, reason)
        return "pending"


def failure_reason(exc: Exception) -> str:
    """Why a document's index work failed, redacted, for a mark or a report."""
    if isinstance(exc, VectorIndexError | StorageError):
        return redact(str(exc))
    if isinstance(exc, TimeoutError):
        return "the invocation's time ran out"
    return redact(f"{type(exc).__name__}: {exc}")[:300]  # a bug, named for whoever reads the mark


async def forget_document(index: VectorIndex, output_bucket: str, document: str) -> None:
    """A deleted source's rows; a failure is left to reconcile, which finds rows without a manifest."""
    try:
        removed = await index.remove(output_bucket, document)
    except VectorIndexError as exc:
        log.error("index_remove_failed", document=document, reason=redact(str(exc)))
    else:
        log.info("index_rows_removed", document=document, rows=removed)


async def write_document(
    index: VectorIndex, storage: ObjectStorage, outputs: DocumentOutputs, manifest: Manifest
) -> IndexOutcome:
    """Replace the document's rows with the records `manifest` vouches for; "stale" when the records
    object is not the one it vouches for (reconcile embeds the document again, then indexes it)."""
    keys = outputs.keys
    records_etag = await outputs.records_etag()
    if records_etag is None or not manifest.names_records(records_etag):
        return "stale"
    if manifest.dimensions != index.dimensions:
        return "stale"  # made with other settings: reconcile embeds it again

    rows = _Counted(
        records_rows(
            storage,
            keys.bucket,
            keys.records,
            scope=keys.index_scope,
            document=keys.document,
            records_etag=records_etag,
            dimensions=index.dimensions,
        )
    )

    async def still_current() -> bool:
        if rows.count == 0 and manifest.chunks > 0:
            return False  # rolled back: no record of the document could go in
        now = await outputs.manifest()
        return (
            now is not None
            and now.records.etag == manifest.records.etag
            and await outputs.records_etag() == records_etag
        )

    written = await index.replace(keys.index_scope, keys.document, rows, still_current=still_current)
    if rows.count == 0 and manifest.chunks > 0:
        raise VectorIndexError(
            f"none of the {manifest.chunks} records can go into the index (damaged, or vectors of "
            f"another length than its {index.dimensions})"
        )
    if written is None:
        log.info("index_write_superseded", document=keys.document)
        return "stale"
    log.info("index_written", document=keys.document, rows=written)
    return "indexed" if written == manifest.chunks else "partial"


async def _mark(outputs: DocumentOutputs, manifest: Manifest, reason: str) -> None:
    try:
        await outputs.mark_for_index(
            IndexPending(records_etag=manifest.records.etag, reason=reason, marked_at=utc_now())
        )
    except StorageError as exc:
        # Reconcile still finds the drift: the index holds another version of the records, or none.
        log.warning("index_mark_failed", document=outputs.keys.document, reason=redact(str(exc)))


class _Counted:
    """Rows passed on, counted: how many of the document's records the index took."""

    def __init__(self, rows: AsyncIterator[IndexRow]) -> None:
        self._rows = rows
        self.count = 0

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> IndexRow:
        row = await anext(self._rows)
        self.count += 1
        return row
