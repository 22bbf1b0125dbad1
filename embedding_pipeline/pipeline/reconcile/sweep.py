"""A reconcile sweep: the pages of one bucket and prefix, walked in key order across invocations.

A timer tick starts a sweep (or resumes a paused one, or takes over one whose holder is gone), and
walks page after page (page.py). Then, by mode:

- **queue** (QUEUE_URL set): a page sends what needs embedding to the queue as object references,
  so the queue's instances embed in parallel at the shared quota while the walk goes on. A walk
  hands on after STEP_S, or sooner when more is queued than the instances can take in a minute
  (with a delay): the next step is a queue message of its own. After the last page the sweep
  drains: it waits, one step a few seconds apart, until its instances have reported what they did
  with every reference (results.py), then writes its report.
- **inline** (no queue: a laptop, `embedpipe`): a page embeds here, a few documents side by side;
  a tick that runs out of time pauses the sweep, and the next tick resumes it.

Either way one sweep runs at a time per bucket and prefix (state.py: its state is its lease), every
page judges its own key range only, and the sweep's report, summed over its pages and runs, lands
in `_reports/` when it ends. A dry run takes no lease and writes nothing (dry_run.py).
"""

from __future__ import annotations

import time
from typing import Any

from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.messages import SweepStep
from embedding_pipeline.pipeline.reconcile.dry_run import dry_run_sweep
from embedding_pipeline.pipeline.reconcile.order import server_order
from embedding_pipeline.pipeline.reconcile.report import run_reply
from embedding_pipeline.pipeline.reconcile.state import (
    Lease,
    SweepState,
    fresh_state,
    on_step,
    on_tick,
    prefix_id_of,
)
from embedding_pipeline.pipeline.reconcile.stopping import send_step
from embedding_pipeline.pipeline.reconcile.walk import SweepWalk
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()


async def reconcile(
    invocation: Invocation,
    bucket: str,
    *,
    prefix: str | None = None,
    dry_run: bool = False,
    max_tokens: int | None = None,
    after: str | None = None,
) -> dict[str, Any]:
    """A timer tick: start, resume or take over the sweep of `bucket` and `prefix`, and walk it."""
    settings = invocation.settings
    prefix = settings.source_prefix if prefix is None else prefix
    budget = max_tokens or settings.reconcile_max_tokens
    if dry_run:
        return await dry_run_sweep(invocation, bucket, prefix, after=after)
    started = time.monotonic()
    prefix_id = prefix_id_of(bucket, prefix)
    lease = Lease(invocation.storage, invocation.outputs(bucket).layout, prefix_id, by=invocation.request_id)
    state = await lease.read()
    decision = on_tick(state, lease.now())
    if decision == "busy":
        assert state is not None
        log.info("reconcile_in_progress", sweep=state.sweep, held_by=state.holder and state.holder.by)
        return {"in_progress": state.summary(), "stopped_by": "a sweep is in progress", "report": None}
    if decision == "start" or state is None:
        order = await server_order(invocation.storage, lease.layout, may_write=True)
        assert order is not None
        state = fresh_state(
            prefix_id=prefix_id,
            bucket=bucket,
            prefix=prefix,
            mode="queue" if invocation.queue is not None else "inline",
            order=order.name,
            max_tokens=budget,
            now=lease.now(),
        )
    else:
        if decision == "take_over":
            log.warning("sweep_taken_over", sweep=state.sweep, held_by=state.holder and state.holder.by)
            state.step += 1  # what the old holder would send next is obsolete
        state.max_tokens, state.run_tokens, state.stopped_by = budget, 0, None
    state.runs += 1
    lease.hold(state, invocation.deadline.remaining())
    if not await lease.write(state):
        return {"in_progress": state.summary(), "stopped_by": "a sweep is in progress", "report": None}
    log.info("sweep_started" if decision == "start" else "sweep_resumed", sweep=state.sweep, mode=state.mode)
    return await _walk(invocation, lease, state, started=started)


async def run_step(invocation: Invocation, step: SweepStep) -> DocumentResult:
    """The queue's message of one step of a sweep: walk on, if this message still has the sweep."""
    started = time.monotonic()
    prefix_id, _, sweep = step.sweep.partition("/")
    outputs = invocation.outputs(step.bucket)
    lease = Lease(invocation.storage, outputs.layout, prefix_id, by=invocation.request_id)
    state = await lease.read()
    decision = on_step(state, sweep, step.step, lease.now())
    done = DocumentResult(step.bucket, f"(sweep {step.sweep} step {step.step})", "reconciled")
    if state is None or state.prefix_id != prefix_id or decision == "drop":
        log.info("sweep_step_dropped", sweep=step.sweep, step=step.step)
        done.reason = "obsolete step"
        return done
    if decision == "resend_next":
        await send_step(invocation, state, delay_s=0)
        done.reason = "the next step sent again"
        return done
    if decision == "retry_later":
        assert state.holder is not None
        delay = int(max(1.0, state.holder.until - lease.now()) + 1)
        await send_step(invocation, state, delay_s=delay, step=step.step)
        done.reason = f"held by {state.holder.by}: tried again in {delay} s"
        return done
    if decision == "take_over":
        log.warning("sweep_taken_over", sweep=state.sweep, held_by=state.holder and state.holder.by)
    lease.hold(state, invocation.deadline.remaining())
    if not await lease.write(state):
        done.reason = "another step took it"
        return done
    reply = await _walk(invocation, lease, state, started=started)
    done.reason = reply.get("stopped_by") or "finished"
    return done


async def _walk(invocation: Invocation, lease: Lease, state: SweepState, *, started: float) -> dict[str, Any]:
    """Walk the held sweep's pages until it ends, pauses, or hands on; the reply of this run."""
    walk = SweepWalk(invocation, lease, state, started)
    async with lease.holding(invocation.deadline.remaining):
        while not lease.lost:
            reply = await walk.next()
            if reply is not None:
                return reply
    return run_reply(state, walk.walked, "the sweep was taken over", started=started)
