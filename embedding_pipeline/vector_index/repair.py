"""Reconcile's repair of the vector index: the index's summary against the bucket's listing.

Rows of another records version, documents with a manifest and no rows, documents marked for the
index (a write that failed, follow.py): written again; rows whose document has no manifest:
removed. `embedpipe reindex` is the same with every document rewritten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.store import BucketOutputs, DocumentOutputs
from embedding_pipeline.vector_index.follow import failure_reason, write_document
from embedding_pipeline.vector_index.postgres import VectorIndex

log = get_logger()

T = TypeVar("T")


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
    current: int = 0  # rows of the records the manifest vouches for (a rebuild writes them again)
    orphaned: int = 0  # rows whose document has no manifest
    written: int = 0  # documents written whole
    written_partly: int = 0  # written without records lines the index cannot take (follow.py)
    removed: int = 0
    failed: int = 0
    stopped_by: str | None = None
    errors: list[str] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {**asdict(self), "errors": self.errors[:20]}

    def count(self, state: _State) -> None:
        setattr(self, state, getattr(self, state) + 1)


_State = Literal["missing", "stale", "current"]


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
        state: _State = (
            "missing"
            if document not in held
            else "stale"
            if held[document] != records[document].etag or document in marked
            else "current"
        )
        found.count(state)
        if rebuild or state != "current":  # a rebuild writes current documents all the same
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
    if outcome == "partial":
        found.written_partly += 1
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
        reason = failure_reason(exc)
        found.failed += 1
        found.errors.append(f"{document}: {reason[:200]}")
        log.warning("index_repair_failed", document=document, reason=reason)
        return None
    return result
