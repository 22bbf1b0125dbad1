"""How a run of a sweep stops: it hands on to the next step through the queue (commit, then send:
state.py says why in that order), pauses for the next tick, drains (waits for the queue's instances
to report), or finishes (the report, then the state goes)."""

from __future__ import annotations

from typing import Any

from embedding_pipeline.errors import StorageError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.messages import ReconcileStep, SweepStep
from embedding_pipeline.pipeline.reconcile import results
from embedding_pipeline.pipeline.reconcile.report import run_reply, sweep_report
from embedding_pipeline.pipeline.reconcile.state import HAND_ON_GRACE_S, Lease, SweepState
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.pipeline.reconcile.verified import discard_older

log = get_logger()

DRAIN_PATIENCE_S = 1800.0  # no result for this long: the sweep ends without the rest of them


async def drain(invocation: Invocation, lease: Lease, state: SweepState, *, started: float) -> dict[str, Any]:
    """The walk is over: wait for the queue's instances to report, then the report."""
    waiting = state.totals.queued - state.totals.accounted
    stalled = lease.now() - state.last_progress > DRAIN_PATIENCE_S
    if waiting <= 0 or stalled or state.mode == "inline":
        return await finish(invocation, lease, state, Totals(), started=started)
    delay = int(min(60.0, max(3.0, waiting / invocation.settings.embeddings_rps)))
    return await hand_on(invocation, lease, state, Totals(), delay_s=delay, started=started)


async def hand_on(
    invocation: Invocation,
    lease: Lease,
    state: SweepState,
    walked: Totals,
    *,
    delay_s: int,
    started: float,
) -> dict[str, Any]:
    """Commit, then send the next step (state.py says why in that order)."""
    state.step += 1
    state.holder = None
    state.expect_by = lease.now() + delay_s + HAND_ON_GRACE_S
    if await lease.write(state):
        await send_step(invocation, state, delay_s=delay_s)
        log.info("sweep_handed_on", sweep=state.sweep, step=state.step, delay_s=delay_s, phase=state.phase)
    return run_reply(state, walked, "handed on to the queue", started=started)


async def send_step(
    invocation: Invocation, state: SweepState, *, delay_s: int, step: int | None = None
) -> None:
    queue = invocation.queue
    if queue is None:
        return  # a queue-mode sweep seen by an instance without one: the next tick takes over
    body = ReconcileStep(
        reconcile=SweepStep(
            bucket=state.bucket,
            prefix=state.prefix,
            sweep=state.tag,
            step=state.step if step is None else step,
        )
    ).body()
    await queue.send(body, delay_s=delay_s)


async def pause(
    lease: Lease, state: SweepState, walked: Totals, reason: str, *, started: float
) -> dict[str, Any]:
    """This run stops; the sweep waits where it is for the next tick."""
    state.holder, state.expect_by, state.stopped_by = None, None, reason
    if await lease.write(state):
        log.info("sweep_paused", sweep=state.sweep, reason=reason, after=state.after)
    return run_reply(state, walked, reason, started=started)


async def finish(
    invocation: Invocation, lease: Lease, state: SweepState, walked: Totals, *, started: float
) -> dict[str, Any]:
    outputs = invocation.outputs(state.bucket)
    state.stopped_by = None
    reply = run_reply(state, walked, None, started=started)
    report = sweep_report(invocation.settings, state)
    try:
        reply["report"] = await outputs.write_report(state.started_at, report)
        await results.discard(invocation.storage, outputs.layout, state)
        if state.started:  # states written before it was kept have none: their summaries stay
            reply["summaries_removed"] = await discard_older(
                invocation.storage, outputs.layout, state.prefix_id, state.started
            )
        await lease.remove()
    except StorageError as exc:
        log.error("reconcile_report_not_written", error=exc)
    log.info(
        "reconcile_done",
        report=reply["report"],
        **{
            k: v
            for k, v in report.items()
            if k in ("found", "outcomes", "failed", "tokens", "pages", "queued")
        },
    )
    return reply
