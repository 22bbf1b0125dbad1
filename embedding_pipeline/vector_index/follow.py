"""Keeping the vector index in step with the bucket: the records are the truth, the index follows.

- A manifest stands (`follow_manifest`): the records it vouches for are read back from the bucket,
  as a stream, and replace the document's rows in one transaction. If the index fails, the outputs
  in the bucket stand as written and the document is marked (`_index/{K}.json`) for reconcile.
- A source is deleted (`forget_document`): its rows go; if the index fails, reconcile sees rows
  without a manifest and removes them.
- Reconcile (`repair`): the index's summary against the bucket's listing. Rows of another records
  version, documents with a manifest and no rows, marked documents: written again; rows whose
  document has no manifest: removed. `embedpipe reindex` is the same with every document rewritten.

A write checks, just before its commit, that the manifest still vouches for the records it read:
whichever of two racing writers commits last, the rows are those of the manifest that stands, or
the next reconcile sees the records ETag differ and writes them again.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import StorageError, VectorIndexError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import IndexPending, Manifest, utc_now
from embedding_pipeline.outputs.store import BucketOutputs, DocumentOutputs
from embedding_pipeline.redact import redact
from embedding_pipeline.vector_index.postgres import IndexRow, VectorIndex

log = get_logger()

IndexOutcome = Literal["indexed", "pending", "stale"]
T = TypeVar("T")


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
        reason = _reason(exc)
        log.error("index_write_failed", document=outputs.keys.document, reason=reason)
        await _mark(outputs, manifest, reason)
        return "pending"


def _reason(exc: Exception) -> str:
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

    async def still_current() -> bool:
        now = await outputs.manifest()
        return (
            now is not None
            and now.records.etag == manifest.records.etag
            and await outputs.records_etag() == records_etag
        )

    rows = _rows(
        storage,
        keys.bucket,
        keys.records,
        scope=keys.index_scope,
        document=keys.document,
        records_etag=records_etag,
        dimensions=index.dimensions,
    )
    written = await index.replace(keys.index_scope, keys.document, rows, still_current=still_current)
    if written is None:
        log.info("index_write_superseded", document=keys.document)
        return "stale"
    log.info("index_written", document=keys.document, rows=written)
    return "indexed"


async def _rows(
    storage: ObjectStorage,
    bucket: str,
    key: str,
    *,
    scope: str,
    document: str,
    records_etag: str,
    dimensions: int,
) -> AsyncIterator[IndexRow]:
    damaged = 0
    async for line in storage.iter_lines(bucket, key):
        try:
            row = _row(json.loads(line), scope, document, records_etag, dimensions)
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeError):
            damaged += 1  # a damaged line is not trusted; the rest of the records still are
            continue
        yield row
    if damaged:
        log.warning("index_records_damaged", document=document, lines=damaged)


def _row(record: dict[str, Any], scope: str, document: str, records_etag: str, dimensions: int) -> IndexRow:
    """A record as a row, or ValueError: nothing PostgreSQL would refuse gets as far as the COPY,
    which would fail the whole document, again at every reconcile."""
    source = record["source"]
    vector = [float(value) for value in record["embedding"]]
    if len(vector) != dimensions or not all(math.isfinite(value) for value in vector):
        raise ValueError("not a vector of the index's length")
    start, end = record.get("start"), record.get("end")
    row: IndexRow = (
        scope,
        document,
        int(record["chunk"]),
        _text(record["id"]),
        _text(source["bucket"]),
        _text(source["key"]),
        None if source.get("etag") is None else _text(source["etag"]),
        records_etag,
        _text(record["model"]),
        _text(record["text"]),
        None if start is None else int(start),
        None if end is None else int(end),
        json.dumps(_without_nul(record.get("metadata") or {}), ensure_ascii=False),
        vector,
    )
    return row


def _text(value: object) -> str:
    """PostgreSQL's text holds no NUL, and only valid UTF-8 (UnicodeError for a lone surrogate)."""
    if not isinstance(value, str):
        raise TypeError("not a string")
    value.encode("utf-8")
    return value.replace("\x00", "")


def _without_nul(value: Any) -> Any:
    """jsonb refuses \\u0000 in any string: metadata loses its NULs, keys included."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_text(name): _without_nul(item) for name, item in value.items()}
    return value


async def _mark(outputs: DocumentOutputs, manifest: Manifest, reason: str) -> None:
    try:
        await outputs.mark_for_index(
            IndexPending(records_etag=manifest.records.etag, reason=reason, marked_at=utc_now())
        )
    except StorageError as exc:
        # Reconcile still finds the drift: the index holds another version of the records, or none.
        log.warning("index_mark_failed", document=outputs.keys.document, reason=redact(str(exc)))


@dataclass(frozen=True, slots=True)
class IndexPage:
    """The documents one repair judges: under `prefix`, after `after`, up to `through`, and kept."""

    prefix: str = ""
    after: str | None = None
    through: str | None = None
    keep: Callable[[str], bool] = lambda _document: True
    slash_first: bool = False  # the bucket's server lists folders first (reconcile/ranges.py)


@dataclass(slots=True)
class IndexRepair:
    """What reconcile (or a rebuild) found in the index and did about it, for its report."""

    documents: int = 0  # documents the index held for this bucket before
    missing: int = 0  # a manifest and no rows
    stale: int = 0  # rows of another records version, or a document marked for the index
    orphaned: int = 0  # rows whose document has no manifest
    written: int = 0
    removed: int = 0
    failed: int = 0
    stopped_by: str | None = None
    errors: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors[:20]}


async def repair(
    index: VectorIndex,
    storage: ObjectStorage,
    outputs: BucketOutputs,
    *,
    records: dict[str, ObjectInfo],
    manifests: Collection[str],
    marked: Collection[str],
    skip: Collection[str] = (),
    deadline: Deadline,
    dry_run: bool = False,
    rebuild: bool = False,
    page: IndexPage | None = None,
) -> IndexRepair:
    """Bring the index in step with this output bucket's listing (of one page of documents).

    `records` and `manifests` are the documents with a records object (and its ETag) and with a
    manifest; `marked`, those marked for the index; `skip`, documents this run embeds anyway (their
    own write follows their manifest). `rebuild` writes every document afresh. With `page`, only
    the index's documents of that page are judged: the listing says nothing of the others.
    """
    found = IndexRepair()
    bucket = outputs.layout.index_scope  # the index's name for this output area
    page = page or IndexPage()
    held = {
        document: etag
        for document, etag in (
            await index.summary(
                bucket,
                prefix=page.prefix,
                after=page.after,
                through=page.through,
                slash_first=page.slash_first,
                create=not dry_run,
            )
        ).items()
        if page.keep(document)
    }
    found.documents = len(held)
    orphaned = sorted(document for document in held if document not in manifests)
    to_write = []
    for document in sorted(manifests):
        if document in skip or document not in records:
            continue
        if document not in held:
            found.missing += 1
        elif rebuild or held[document] != records[document].etag or document in marked:
            found.stale += 1
        else:
            continue
        to_write.append(document)
    found.orphaned = len(orphaned)
    if dry_run:
        return found
    for document in orphaned:
        if deadline.expired():
            found.stopped_by = "time budget"
            return found
        if await _attempt(found, document, index.remove(bucket, document)) is not None:
            found.removed += 1
    for document in to_write:
        if deadline.expired():
            found.stopped_by = "time budget"
            return found
        await _write_one(index, storage, outputs.document(document), found, marked=document in marked)
    for document in sorted(set(marked) - set(manifests)):
        await _attempt(found, document, outputs.document(document).unmark_for_index())
    return found


async def _write_one(
    index: VectorIndex, storage: ObjectStorage, outputs: DocumentOutputs, found: IndexRepair, *, marked: bool
) -> None:
    manifest = await outputs.manifest()
    if manifest is None:
        return  # removed since the listing
    outcome = await _attempt(found, outputs.keys.document, write_document(index, storage, outputs, manifest))
    if outcome == "indexed":
        found.written += 1
        if marked:
            await _attempt(found, outputs.keys.document, outputs.unmark_for_index())


async def _attempt(found: IndexRepair, document: str, work: Awaitable[T]) -> T | None:
    """One document's index work; a failure, whatever it is, is counted and reported and the repair
    goes on: no document may stall it (a database that is down fails the summary first)."""
    try:
        result = await work
    except Exception as exc:
        reason = _reason(exc)
        found.failed += 1
        found.errors.append(f"{document}: {reason[:200]}")
        log.warning("index_repair_failed", document=document, reason=reason)
        return None
    return result
