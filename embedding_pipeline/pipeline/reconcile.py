"""Reconcile a bucket: embed what is missing or stale, remove orphaned outputs, retry parked failures.

Stale means the manifest's ETag or settings fingerprint (model, dimensions, chunking) differ from now,
so changing EMBEDDINGS_MODEL and letting reconcile run migrates a bucket. Work goes newest source
first, within the invocation's time budget and a token budget; a cursor in `_reports/cursor.json`
lets the next tick start after the last document this one tried, and every run leaves a report in
`{OUTPUT_PREFIX}_reports/<UTC timestamp>.json`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from embedding_pipeline.clients.storage import ObjectInfo
from embedding_pipeline.errors import OutOfTime, TransientError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import settings_fingerprint, utc_now
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.embed import embed_object

log = get_logger()


@dataclass(slots=True)
class Inventory:
    sources: dict[str, ObjectInfo] = field(default_factory=dict)
    # Documents with an output of each kind (inline records are not reconciled: they have no source).
    outputs: dict[str, set[str]] = field(
        default_factory=lambda: {kind: set() for kind in ("manifest", "records", "error", "checkpoint")}
    )


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
    budget = max_tokens or settings.reconcile_max_tokens
    outputs = invocation.outputs(bucket)
    inventory = await _inventory(invocation, bucket, outputs, prefix)
    found = await _classify(invocation, outputs, inventory)
    orphans = sorted(found.pop("orphaned"))
    if not dry_run:
        for key in orphans:
            await outputs.document(key).remove()
    work = sorted(
        found["missing"] | found["stale"] | found["parked_retry"],
        key=lambda key: (inventory.sources[key].last_modified or "", key),
        reverse=True,
    )
    work = _after_cursor(work, await outputs.read_cursor())
    outcomes: dict[str, int] = {}
    tokens = 0
    attempted: list[str] = []
    stopped = None
    for key in work:
        if tokens >= budget:
            stopped = "token budget"
            break
        if invocation.deadline.expired():
            stopped = "time budget"
            break
        attempted.append(key)
        try:
            result = await embed_object(invocation, bucket, key, dry_run=dry_run)
        except OutOfTime:
            stopped = "time budget"
            break
        except TransientError as exc:
            log.warning("reconcile_document_failed", key=key, error=exc)
            stopped = f"transient failure: {exc.code}"
            break
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        tokens += result.tokens
    remaining = len(work) - sum(outcomes.values())
    if not dry_run:
        await outputs.write_cursor(attempted[-1] if remaining and attempted else None)
    report = {
        "started_at": started_at,
        "finished_at": utc_now(),
        "dry_run": dry_run,
        "bucket": bucket,
        "prefix": prefix,
        "found": {
            "sources": len(inventory.sources),
            "missing": len(found["missing"]),
            "stale": len(found["stale"]),
            "orphaned": len(orphans),
            "parked_retry": len(found["parked_retry"]),
            "parked": len(found["parked"]),
        },
        "outcomes": outcomes,
        "orphans_removed": 0 if dry_run else len(orphans),
        "remaining": remaining,
        "stopped_by": stopped,
        "tokens": tokens,
        "estimated_cost": round(tokens / 1000 * settings.embeddings_price_per_1k_tokens, 6),
        "api_requests": invocation.usage.requests,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    report_key = await outputs.write_report(started_at, report)
    log.info(
        "reconcile_done",
        report=report_key,
        **{k: v for k, v in report.items() if k in ("found", "outcomes", "tokens")},
    )
    return {**report, "report": report_key}


async def _inventory(invocation: Invocation, bucket: str, outputs: BucketOutputs, prefix: str) -> Inventory:
    inventory = Inventory()
    async for info in invocation.storage.list_objects(bucket, prefix):
        if not outputs.layout.holds(bucket, info.key):
            inventory.sources[info.key] = info
    async for _, output in outputs.listing():
        if output.document is not None and not output.inline:
            inventory.outputs[output.kind].add(output.document)
    return inventory


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
    parked, manifests = inventory.outputs["error"], inventory.outputs["manifest"]
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
            if manifest is None or manifest.source.etag != info.etag or manifest.fingerprint != fingerprint:
                found["stale"].add(key)
    return found


def _after_cursor(work: list[str], cursor: str | None) -> list[str]:
    if cursor is None or cursor not in work:
        return work
    position = work.index(cursor) + 1
    return work[position:] + work[:position]
