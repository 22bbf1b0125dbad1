"""Reconcile a bucket: embed what is missing or stale, remove orphaned outputs, retry parked failures.

Stale means the manifest no longer matches what it vouches for: the source's ETag, the records
object's ETag (a race overwrote them), or the settings fingerprint (model, dimensions, chunking), so
changing EMBEDDINGS_MODEL and letting reconcile run migrates a bucket. Work goes newest source
first, within the invocation's time budget and a token budget; a cursor in `_reports/cursor.json`
lets the next tick start after the last document this one tried, and every run leaves a report in
`{OUTPUT_PREFIX}_reports/<UTC timestamp>.json`. Inline texts whose run stopped early are finished
from the text kept beside their checkpoint.

With a vector index (VECTOR_DB_DSN), its drift from the bucket is repaired first: rows of another
records version or of a deleted document, documents missing or marked for it (the report's "index").

One document's failure is recorded in the report and the run goes on; a configuration problem
(credentials, roles, the model) stops the run before it touches anything else. A dry run reads
everything and writes nothing: no report, no cursor, no error record, no removal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.clients.storage import ObjectInfo
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import (
    ConfigurationError,
    OutOfTime,
    PipelineError,
    StorageError,
    VectorIndexError,
    is_configuration_problem,
)
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger, redact_text
from embedding_pipeline.outputs.models import settings_fingerprint, utc_now
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.embed import embed_object, refuse_unsafe
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.work_messages import InlineRecord

log = get_logger()

_MAX_REPORTED_FAILURES = 100
_MAX_FAILURES_IN_A_ROW = 3  # then the environment, not the documents, is failing: stop until next tick


@dataclass(slots=True)
class Inventory:
    sources: dict[str, ObjectInfo] = field(default_factory=dict)
    refused: set[str] = field(default_factory=set)  # sources whose keys cannot have outputs
    # Documents with an output of each kind, and that output's object (inline records are listed apart).
    outputs: dict[str, dict[str, ObjectInfo]] = field(
        default_factory=lambda: {
            kind: {} for kind in ("manifest", "records", "error", "checkpoint", "index_pending")
        }
    )
    refusal_records: set[str] = field(default_factory=set)
    inline_manifests: set[str] = field(default_factory=set)
    inline_checkpoints: set[str] = field(default_factory=set)
    # For the vector index, inline documents included: records objects, manifests, marked documents.
    records: dict[str, ObjectInfo] = field(default_factory=dict)
    manifests: set[str] = field(default_factory=set)
    index_marked: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Run:
    """What one reconcile run did, for its report."""

    dry_run: bool
    budget: int
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    failed: int = 0
    tokens: int = 0
    attempted: list[str] = field(default_factory=list)
    stopped: str | None = None
    in_a_row: int = 0

    def count(self, result: DocumentResult) -> None:
        self.outcomes[result.outcome] = self.outcomes.get(result.outcome, 0) + 1
        self.tokens += result.tokens
        self.in_a_row = 0

    def fail(self, key: str, exc: Exception) -> None:
        """One document failed: recorded, and the run goes on unless no document could succeed."""
        code = getattr(exc, "code", type(exc).__name__)
        reason = redact_text(str(exc))[:300]
        self.failed += 1
        self.in_a_row += 1
        if len(self.failures) < _MAX_REPORTED_FAILURES:
            self.failures.append({"key": key, "error": code, "reason": reason})
        if is_configuration_problem(exc):
            # One clear line: every document would fail the same way, and none is parked for it. The
            # document was not really tried: the cursor does not move past it.
            log.error("reconcile_configuration_problem", error=code, reason=reason)
            self.stopped = f"configuration problem: {code}"
            if self.attempted and self.attempted[-1] == key:
                self.attempted.pop()
        elif self.in_a_row >= _MAX_FAILURES_IN_A_ROW:
            self.stopped = f"{self.in_a_row} failures in a row, the last: {code}"
        else:
            log.warning("reconcile_document_failed", key=key, error=code, reason=reason)

    def may_start(self, invocation: Invocation) -> bool:
        if self.stopped is None and self.tokens >= self.budget:
            self.stopped = "token budget"
        if self.stopped is None and invocation.deadline.expired():
            self.stopped = "time budget"
        return self.stopped is None


async def reconcile(
    invocation: Invocation,
    bucket: str,
    *,
    prefix: str | None = None,
    dry_run: bool = False,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    started, started_at = time.monotonic(), utc_now()
    settings = invocation.settings
    prefix = settings.source_prefix if prefix is None else prefix
    outputs = invocation.outputs(bucket)
    run = _Run(dry_run=dry_run, budget=max_tokens or settings.reconcile_max_tokens)
    found: dict[str, set[str]] = {}
    inventory = Inventory()
    work: list[str] = []
    removed = 0
    index_report: dict[str, Any] | None = None
    try:
        inventory = await _inventory(invocation, bucket, outputs, prefix)
        found = await _classify(invocation, outputs, inventory)
        if not dry_run:
            removed = await _remove_orphans(outputs, sorted(found["orphaned"]), run)
            await _record_refusals(invocation, bucket, inventory, run)
        to_embed = found["missing"] | found["stale"] | found["parked_retry"]
        if invocation.vector_index is not None:
            index_report = await _repair_index(
                invocation, outputs, inventory, found, skip=to_embed, dry_run=dry_run
            )
        work = sorted(
            to_embed,
            key=lambda key: (inventory.sources[key].last_modified or "", key),
            reverse=True,
        )
        work = _after_cursor(work, await outputs.read_cursor())
        await _embed_each(invocation, bucket, work, run)
        await _finish_inline(invocation, outputs, sorted(found["inline_unfinished"]), run)
    except Exception as exc:
        # Listing or reading the bucket failed: the run stops here, and the report says why.
        if not isinstance(exc, PipelineError):
            raise
        run.fail("(bucket)", exc)
        run.stopped = run.stopped or f"{getattr(exc, 'code', 'error')}: {redact_text(str(exc))[:200]}"
    remaining = max(0, len(work) - sum(run.outcomes.values()) - run.failed)
    report = {
        "started_at": started_at,
        "finished_at": utc_now(),
        "dry_run": dry_run,
        "bucket": bucket,
        "prefix": prefix,
        "found": {
            "sources": len(inventory.sources),
            "missing": len(found.get("missing", ())),
            "stale": len(found.get("stale", ())),
            "orphaned": len(found.get("orphaned", ())),
            "parked_retry": len(found.get("parked_retry", ())),
            "parked": len(found.get("parked", ())),
            "refused": len(inventory.refused),
            "inline_unfinished": len(found.get("inline_unfinished", ())),
        },
        "outcomes": run.outcomes,
        "failed": run.failed,
        "failures": run.failures,
        "orphans_removed": removed,
        "index": index_report,
        "remaining": remaining,
        "stopped_by": run.stopped,
        "tokens": run.tokens,
        "estimated_cost": round(run.tokens / 1000 * settings.embeddings_price_per_1k_tokens, 6),
        "api_requests": invocation.usage.requests,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    report_key = None if dry_run else await _write_report(outputs, started_at, report, run, remaining)
    log.info(
        "reconcile_done",
        report=report_key,
        **{k: v for k, v in report.items() if k in ("found", "outcomes", "failed", "tokens", "stopped_by")},
    )
    return {**report, "report": report_key}


async def _repair_index(
    invocation: Invocation,
    outputs: BucketOutputs,
    inventory: Inventory,
    found: dict[str, set[str]],
    *,
    skip: set[str],
    dry_run: bool,
) -> dict[str, Any]:
    """The vector index brought in step with the bucket (vector_index/follow.py), within half of the
    time left: the documents still to embed get the rest. It never stops the run: the index is
    derived, and the bucket's own work goes on without it."""
    from embedding_pipeline.vector_index.follow import repair  # noqa: PLC0415

    assert invocation.vector_index is not None
    try:
        repaired = await repair(
            invocation.vector_index,
            invocation.storage,
            outputs,
            records=inventory.records,
            manifests=inventory.manifests - found["orphaned"],
            marked=inventory.index_marked,
            skip=skip,  # this run embeds them: their own write follows their manifest
            deadline=Deadline.after(invocation.deadline.remaining() / 2),
            dry_run=dry_run,
        )
    except (VectorIndexError, StorageError) as exc:
        reason = redact_text(str(exc))[:300]
        log.error("reconcile_index_failed", reason=reason)
        return {"error": reason}
    return repaired.report()


async def rebuild_index(invocation: Invocation, bucket: str, *, recreate: bool = False) -> dict[str, Any]:
    """`embedpipe reindex`: every document with a manifest written into the index afresh from its
    records, and rows of documents without one removed. `recreate` drops the table first."""
    from embedding_pipeline.vector_index.follow import repair  # noqa: PLC0415

    index = invocation.vector_index
    if index is None:
        raise ConfigurationError("no vector index is configured: set VECTOR_DB_DSN")
    if recreate:
        await index.drop()
    outputs = invocation.outputs(bucket)
    inventory = Inventory()
    await _take_outputs(outputs, inventory)
    repaired = await repair(
        index,
        invocation.storage,
        outputs,
        records=inventory.records,
        manifests=inventory.manifests,
        marked=inventory.index_marked,
        deadline=invocation.deadline,
        rebuild=True,
    )
    report = repaired.report()
    log.info("index_rebuilt", bucket=bucket, **{k: v for k, v in report.items() if k != "errors"})
    return report


async def _embed_each(invocation: Invocation, bucket: str, work: list[str], run: _Run) -> None:
    for key in work:
        if not run.may_start(invocation):
            return
        run.attempted.append(key)
        try:
            result = await embed_object(invocation, bucket, key, dry_run=run.dry_run)
        except OutOfTime:
            run.stopped = "time budget"
            run.attempted.pop()  # not done: the next tick starts with it
            return
        except Exception as exc:
            run.fail(key, exc)
            continue
        run.count(result)


async def _finish_inline(
    invocation: Invocation, outputs: BucketOutputs, documents: list[str], run: _Run
) -> None:
    """Finish inline texts whose run stopped early, from the text kept beside their checkpoint."""
    # Imported here: work.py imports this package's embed module too (keeps import order simple).
    from embedding_pipeline.pipeline.work import embed_inline  # noqa: PLC0415

    for document in documents:
        if not run.may_start(invocation):
            return
        outputs_of = outputs.document(document)
        body = await outputs_of.submission()
        try:
            submission = InlineRecord.model_validate_json(body or b"")
        except ValidationError:
            # Vectors nobody can finish (the text is gone): an orphaned checkpoint.
            if not run.dry_run:
                await outputs_of.remove()
            log.warning("inline_checkpoint_orphaned", document=document)
            continue
        if run.dry_run:
            run.count(DocumentResult(outputs.layout.bucket, document, "would_embed"))
            continue
        try:
            result = await embed_inline(
                invocation,
                submission.id,
                submission.text,
                metadata=submission.metadata,
                model=submission.model,
            )
        except OutOfTime:
            run.stopped = "time budget"
            return
        except Exception as exc:
            run.fail(document, exc)
            continue
        run.count(result)


async def _remove_orphans(outputs: BucketOutputs, orphans: list[str], run: _Run) -> int:
    removed = 0
    for key in orphans:
        try:
            await outputs.document(key).remove()
        except StorageError as exc:
            run.fail(key, exc)
            if run.stopped:
                break
            continue
        removed += 1
    return removed


async def _record_refusals(invocation: Invocation, bucket: str, inventory: Inventory, run: _Run) -> None:
    """A source whose key cannot have outputs gets its error record once, where it fits."""
    layout = invocation.outputs(bucket).layout
    for key in sorted(inventory.refused):
        if layout.refusal(key) in inventory.refusal_records:
            continue
        try:
            await refuse_unsafe(invocation, bucket, key)
        except StorageError as exc:
            run.fail(key, exc)


async def _write_report(
    outputs: BucketOutputs, started_at: str, report: dict[str, Any], run: _Run, remaining: int
) -> str | None:
    """The cursor and the report, whatever happened before; a storage failure here is logged. The
    cursor moves only when a document was tried."""
    try:
        if run.attempted:
            await outputs.write_cursor(run.attempted[-1] if remaining else None)
        return await outputs.write_report(started_at, report)
    except StorageError as exc:
        log.error("reconcile_report_not_written", error=exc)
        return None


async def _inventory(invocation: Invocation, bucket: str, outputs: BucketOutputs, prefix: str) -> Inventory:
    inventory = Inventory()
    layout = outputs.layout
    async for info in invocation.storage.list_objects(bucket, prefix):
        if layout.holds(bucket, info.key):
            continue
        if layout.key_refusal(info.key) is not None:
            inventory.refused.add(info.key)
        else:
            inventory.sources[info.key] = info
    await _take_outputs(outputs, inventory)
    return inventory


async def _take_outputs(outputs: BucketOutputs, inventory: Inventory) -> None:
    """Every output in the bucket's output area, sorted into the inventory."""
    async for info, output in outputs.listing():
        if output.kind == "refusal":
            inventory.refusal_records.add(info.key)
        elif output.document is not None:
            _take_output(inventory, info, output.kind, output.document, inline=output.inline)


def _take_output(inventory: Inventory, info: ObjectInfo, kind: str, document: str, *, inline: bool) -> None:
    if kind == "records":
        inventory.records[document] = info
    elif kind == "manifest":
        inventory.manifests.add(document)
    elif kind == "index_pending":
        inventory.index_marked.add(document)
    if inline:
        if kind == "manifest":
            inventory.inline_manifests.add(document)
        elif kind == "checkpoint":
            inventory.inline_checkpoints.add(document)
    elif kind in inventory.outputs:
        inventory.outputs[kind][document] = info


async def _classify(
    invocation: Invocation, outputs: BucketOutputs, inventory: Inventory
) -> dict[str, set[str]]:
    settings = invocation.settings
    fingerprint = settings_fingerprint(settings, settings.document_model_uri)
    found: dict[str, set[str]] = {
        name: set() for name in ("missing", "stale", "parked_retry", "parked", "orphaned")
    }
    with_outputs = set().union(*inventory.outputs.values())
    found["orphaned"] = {
        key for key in with_outputs if key.startswith(settings.source_prefix) and key not in inventory.sources
    }
    found["inline_unfinished"] = inventory.inline_checkpoints - inventory.inline_manifests
    parked, manifests = inventory.outputs["error"], inventory.outputs["manifest"]
    records = inventory.outputs["records"]
    for key, info in inventory.sources.items():
        document = outputs.document(key)
        if key in parked:
            record = await document.error_record()
            same = (
                record is not None and record.source.etag == info.etag and record.fingerprint == fingerprint
            )
            found["parked" if same else "parked_retry"].add(key)
        elif key not in manifests:
            found["missing"].add(key)
        else:
            manifest = await document.manifest()
            records_info = records.get(key)
            current = manifest is not None and manifest.vouches_for(
                source_etag=info.etag,
                fingerprint=fingerprint,
                records_etag=None if records_info is None else records_info.etag,
            )
            if not current:
                found["stale"].add(key)
    return found


def _after_cursor(work: list[str], cursor: str | None) -> list[str]:
    if cursor is None or cursor not in work:
        return work
    position = work.index(cursor) + 1
    return work[position:] + work[:position]
