"""What a sweep says: a run's reply (the sweep's totals so far and the run's own part), the report
written to `_reports/` when the sweep ends, and every sweep under way (for `embedpipe status`)."""

from __future__ import annotations

import time
from typing import Any

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.models import utc_now
from embedding_pipeline.pipeline.reconcile.state import Lease, SweepState
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.settings import Settings


def sweep_report(settings: Settings, state: SweepState) -> dict[str, Any]:
    totals = state.totals
    price = settings.embeddings_price_per_1k_tokens
    return {
        "sweep": state.sweep,
        "started_at": state.started_at,
        "finished_at": utc_now(),
        "dry_run": False,
        "bucket": state.bucket,
        "prefix": state.prefix,
        "mode": state.mode,
        **totals.model_dump(exclude={"estimated_tokens", "estimated_ocr_pages"}),
        "unaccounted": max(0, totals.queued - totals.accounted),
        "runs": state.runs,
        "steps": state.step,
        "stopped_by": None,
        "estimated_cost": round(totals.tokens / 1000 * price, 6),
    }


def run_reply(state: SweepState, walked: Totals, stopped_by: str | None, *, started: float) -> dict[str, Any]:
    """What a run answers: the sweep's totals so far, and this run's own part."""
    totals = state.totals
    return {
        "sweep": state.sweep,
        "dry_run": False,
        "bucket": state.bucket,
        "prefix": state.prefix,
        "mode": state.mode,
        "phase": state.phase,
        **totals.model_dump(exclude={"estimated_tokens", "estimated_ocr_pages"}),
        "this_run": {"pages": walked.pages, "outcomes": walked.outcomes, "tokens": walked.tokens},
        "stopped_by": stopped_by,
        "resume_after": state.after if stopped_by is not None else None,
        "report": None,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }


async def sweeps_in_progress(storage: ObjectStorage, layout: OutputLayout) -> list[dict[str, Any]]:
    """Every sweep under way (or paused) in this output area, summarised, for `embedpipe status`."""
    found = []
    folder = layout.sweeps
    async for info in storage.list_objects(layout.bucket, folder):
        name = info.key.removeprefix(folder)
        if "/" in name or not name.endswith(".json"):
            continue  # a sweep's results, or the order probes
        lease = Lease(storage, layout, name.removesuffix(".json"), by="status")
        state = await lease.read()
        if state is not None:
            found.append(state.summary())
    return found
