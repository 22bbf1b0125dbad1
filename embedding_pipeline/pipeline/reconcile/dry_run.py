"""A dry run of a sweep: every page walked here, estimating what embedding would cost, nothing
written (no lease, no state, no report object: the reply is the report).

Tokens are estimated from sizes, calibrated on the bucket's own manifests (estimate.py); a document
is read only where no calibration exists yet, a bounded sample of them.
"""

from __future__ import annotations

import time
from typing import Any

from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import utc_now
from embedding_pipeline.pipeline.reconcile.actions import SweepRun
from embedding_pipeline.pipeline.reconcile.estimate import Calibration
from embedding_pipeline.pipeline.reconcile.inline_page import inline_page
from embedding_pipeline.pipeline.reconcile.inventory import INLINE
from embedding_pipeline.pipeline.reconcile.order import server_order
from embedding_pipeline.pipeline.reconcile.page import source_page
from embedding_pipeline.pipeline.reconcile.ranges import BYTES, KeyRange
from embedding_pipeline.pipeline.reconcile.state import prefix_id_of
from embedding_pipeline.pipeline.reconcile.totals import Totals, requests_since
from embedding_pipeline.redact import redact

log = get_logger()


async def dry_run_sweep(
    invocation: Invocation, bucket: str, prefix: str, *, after: str | None
) -> dict[str, Any]:
    """Walk every page here, estimating, and write nothing; the reply is the report."""
    started, started_at = time.monotonic(), utc_now()
    settings = invocation.settings
    calibration = Calibration(settings.chars_per_token)
    outputs = invocation.outputs(bucket)
    run = SweepRun(
        invocation,
        bucket,
        outputs,
        "dry_run",
        calibration,
        max_tokens=2**62,
        prefix_id=prefix_id_of(bucket, prefix),
    )
    totals = Totals()
    order = await server_order(invocation.storage, outputs.layout, may_write=False)
    phase, rest = "sources", KeyRange(prefix, after, order=order or BYTES)
    stopped: str | None = None
    requests_seen = dict(invocation.storage.requests)
    while True:
        if invocation.deadline.expired():
            stopped = "time budget"
            break
        try:
            if phase == "inline":
                page = await inline_page(run, rest, page_size=settings.reconcile_page_size)
            else:
                page = await source_page(run, rest, page_size=settings.reconcile_page_size)
        except PipelineError as exc:
            run.fail(totals, "(bucket)", exc)
            stopped = f"{getattr(exc, 'code', 'error')}: {redact(str(exc))[:200]}"
            break
        page.part.requests_add(requests_since(invocation.storage.requests, requests_seen))
        totals.add(page.part)
        if not page.complete:
            stopped = run.stopped or "time budget"
            break
        if not page.last:
            rest = KeyRange(rest.prefix, page.range.through, order=rest.order)
        elif phase == "sources" and prefix == settings.source_prefix:
            phase, rest = "inline", KeyRange(INLINE, order=rest.order)
        else:
            break
    price = settings.embeddings_price_per_1k_tokens
    report = {
        "started_at": started_at,
        "finished_at": utc_now(),
        "dry_run": True,
        "bucket": bucket,
        "prefix": prefix,
        **totals.model_dump(
            exclude={"tokens", "estimated_tokens", "estimated_ocr_pages", "queued", "accounted"}
        ),
        "tokens": totals.estimated_tokens,
        "ocr_pages": totals.estimated_ocr_pages,
        "estimated_cost": round(totals.estimated_tokens / 1000 * price, 6),
        "estimate": calibration.report(),
        "key_order": None if order is None else order.name,
        "stopped_by": stopped,
        "resume_after": rest.after if stopped else None,
        "report": None,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    log.info("reconcile_dry_run_done", found=totals.found, tokens=totals.estimated_tokens, stopped_by=stopped)
    return report
