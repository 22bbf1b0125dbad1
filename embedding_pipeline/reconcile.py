"""Reconcile a bucket: embed what is missing or stale, remove orphaned outputs, retry parked failures.

Stale means the manifest's ETag or settings fingerprint (model, dimensions, chunking) differ from now,
so changing EMBEDDINGS_MODEL and letting reconcile run migrates a bucket. Work goes newest source
first, within the invocation's time budget and a token budget; a cursor in `_reports/cursor.json`
lets the next tick start after the last document this one tried, and every run leaves a report in
`{OUTPUT_PREFIX}_reports/<UTC timestamp>.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.errors import OutOfTime, TransientError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs import remove_outputs
from embedding_pipeline.pipeline import embed_object, fingerprint_for
from embedding_pipeline.records import (
    CHECKPOINTS_DIR,
    ERRORS_DIR,
    INLINE_DIR,
    REPORTS_DIR,
    ErrorRecord,
    parse_manifest,
    utc_now,
)
from embedding_pipeline.run import Run
from embedding_pipeline.storage import ObjectInfo

log = get_logger()

_SMALL_OBJECT = 1024 * 1024


@dataclass(slots=True)
class Inventory:
    sources: dict[str, ObjectInfo] = field(default_factory=dict)
    manifests: set[str] = field(default_factory=set)
    records: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    checkpoints: set[str] = field(default_factory=set)


async def reconcile(
    run: Run, bucket: str, *, prefix: str | None = None, dry_run: bool = False, max_tokens: int | None = None
) -> dict[str, Any]:
    started, started_at = time.monotonic(), utc_now()
    settings = run.settings
    prefix = settings.source_prefix if prefix is None else prefix
    budget = max_tokens or settings.reconcile_max_tokens
    out_bucket = settings.output_bucket or bucket
    inventory = await _inventory(run, bucket, out_bucket, prefix)
    found = await _classify(run, out_bucket, inventory)
    orphans = sorted(found.pop("orphaned"))
    if not dry_run:
        for key in orphans:
            await remove_outputs(run, out_bucket, key)
    work = sorted(
        found["missing"] | found["stale"] | found["parked_retry"],
        key=lambda key: (inventory.sources[key].last_modified or "", key),
        reverse=True,
    )
    cursor_key = f"{settings.output_prefix}{REPORTS_DIR}cursor.json"
    work = _after_cursor(work, await _read_cursor(run, out_bucket, cursor_key))
    outcomes: dict[str, int] = {}
    tokens = 0
    attempted: list[str] = []
    stopped = None
    for key in work:
        if tokens >= budget:
            stopped = "token budget"
            break
        if run.deadline.expired():
            stopped = "time budget"
            break
        attempted.append(key)
        try:
            result = await embed_object(run, bucket, key, dry_run=dry_run)
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
        await _write_cursor(run, out_bucket, cursor_key, attempted[-1] if remaining and attempted else None)
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
        "api_requests": run.usage.requests,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    report_key = f"{settings.output_prefix}{REPORTS_DIR}{started_at.replace(':', '-')}.json"
    await run.storage.put(
        out_bucket, report_key, json.dumps(report, indent=2).encode(), content_type="application/json"
    )
    log.info(
        "reconcile_done",
        report=report_key,
        **{k: v for k, v in report.items() if k in ("found", "outcomes", "tokens")},
    )
    return {**report, "report": report_key}


async def _inventory(run: Run, bucket: str, out_bucket: str, prefix: str) -> Inventory:
    output_prefix = run.settings.output_prefix
    inventory = Inventory()
    async for info in run.storage.list_objects(bucket, prefix):
        if not (bucket == out_bucket and info.key.startswith(output_prefix)):
            inventory.sources[info.key] = info
    async for info in run.storage.list_objects(out_bucket, output_prefix):
        name = info.key[len(output_prefix) :]
        if name.startswith((INLINE_DIR, REPORTS_DIR, f"{ERRORS_DIR}_queue/")):
            continue
        if name.startswith(ERRORS_DIR) and name.endswith(".json"):
            inventory.errors.add(name[len(ERRORS_DIR) : -len(".json")])
        elif name.startswith(CHECKPOINTS_DIR):
            inventory.checkpoints.add(name[len(CHECKPOINTS_DIR) :].rpartition("/")[0])
        elif name.endswith(".manifest.json"):
            inventory.manifests.add(name[: -len(".manifest.json")])
        elif name.endswith(".jsonl"):
            inventory.records.add(name[: -len(".jsonl")])
    return inventory


async def _classify(run: Run, out_bucket: str, inventory: Inventory) -> dict[str, set[str]]:
    settings = run.settings
    fingerprint = fingerprint_for(run, settings.document_model_uri)
    found: dict[str, set[str]] = {
        name: set() for name in ("missing", "stale", "parked_retry", "parked", "orphaned")
    }
    outputs = inventory.manifests | inventory.records | inventory.errors | inventory.checkpoints
    found["orphaned"] = {
        key for key in outputs if key.startswith(settings.source_prefix) and key not in inventory.sources
    }
    for key, info in inventory.sources.items():
        if key in inventory.errors:
            data = await run.storage.get(
                out_bucket, f"{settings.output_prefix}{ERRORS_DIR}{key}.json", max_bytes=_SMALL_OBJECT
            )
            parked = _parse_error_record(data)
            same = (
                parked is not None and parked.source.etag == info.etag and parked.fingerprint == fingerprint
            )
            found["parked" if same else "parked_retry"].add(key)
        elif key not in inventory.manifests:
            found["missing"].add(key)
        else:
            data = await run.storage.get(
                out_bucket, f"{settings.output_prefix}{key}.manifest.json", max_bytes=_SMALL_OBJECT
            )
            manifest = parse_manifest(data)
            if manifest is None or manifest.source.etag != info.etag or manifest.fingerprint != fingerprint:
                found["stale"].add(key)
    return found


def _parse_error_record(data: bytes | None) -> ErrorRecord | None:
    try:
        return ErrorRecord.model_validate_json(data) if data else None
    except ValidationError:
        return None


def _after_cursor(work: list[str], cursor: str | None) -> list[str]:
    if cursor is None or cursor not in work:
        return work
    position = work.index(cursor) + 1
    return work[position:] + work[:position]


async def _read_cursor(run: Run, bucket: str, key: str) -> str | None:
    data = await run.storage.get(bucket, key, max_bytes=_SMALL_OBJECT)
    try:
        value = json.loads(data)["after"] if data else None
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


async def _write_cursor(run: Run, bucket: str, key: str, after: str | None) -> None:
    if after is None:
        await run.storage.delete(bucket, key)
    else:
        await run.storage.put(
            bucket, key, json.dumps({"after": after}).encode(), content_type="application/json"
        )
