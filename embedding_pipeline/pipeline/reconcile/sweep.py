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

from embedding_pipeline.errors import PipelineError, StorageError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import utc_now
from embedding_pipeline.pipeline.reconcile import results
from embedding_pipeline.pipeline.reconcile.dry_run import dry_run_sweep
from embedding_pipeline.pipeline.reconcile.estimate import Calibration
from embedding_pipeline.pipeline.reconcile.inventory import INLINE
from embedding_pipeline.pipeline.reconcile.order import server_order
from embedding_pipeline.pipeline.reconcile.page import PageDone, inline_page, source_page
from embedding_pipeline.pipeline.reconcile.ranges import ORDERS, KeyRange
from embedding_pipeline.pipeline.reconcile.state import (
    HAND_ON_GRACE_S,
    Lease,
    SweepState,
    fresh_state,
    on_step,
    on_tick,
    scope_of,
)
from embedding_pipeline.pipeline.reconcile.totals import Totals, requests_since
from embedding_pipeline.pipeline.reconcile.work import OnSent, Run
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.redact import redact
from embedding_pipeline.work_messages import ReconcileStep, SweepStep

log = get_logger()

STEP_S = 45.0  # a queue-mode step walks this long at most (the invocations stay under 60 s)
BACKLOG_S = 60.0  # queue no more than the quota can embed in this long ahead of the instances
DRAIN_PATIENCE_S = 1800.0  # no result for this long: the sweep ends without the rest of them
_BATCHES_PER_MARK = 10  # a page in the queue notes how far it got every this many batches of ten


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
    scope = scope_of(bucket, prefix)
    lease = Lease(invocation.storage, invocation.outputs(bucket).layout, scope, by=_who(invocation))
    state = await lease.read()
    decision = on_tick(state, time.time())
    if decision == "busy":
        assert state is not None
        log.info("reconcile_in_progress", sweep=state.sweep, held_by=state.holder and state.holder.by)
        return {"in_progress": state.summary(), "stopped_by": "a sweep is in progress", "report": None}
    if decision == "start" or state is None:
        order = await server_order(invocation.storage, lease.layout, may_write=True)
        assert order is not None
        state = fresh_state(
            scope=scope,
            bucket=bucket,
            prefix=prefix,
            mode="queue" if invocation.queue is not None else "inline",
            order=order.name,
            max_tokens=budget,
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
    scope, _, sweep = step.sweep.partition("/")
    outputs = invocation.outputs(step.bucket)
    lease = Lease(invocation.storage, outputs.layout, scope, by=_who(invocation))
    state = await lease.read()
    decision = on_step(state, sweep, step.step, time.time())
    done = DocumentResult(step.bucket, f"(sweep {step.sweep} step {step.step})", "reconciled")
    if state is None or state.scope != scope or decision == "drop":
        log.info("sweep_step_dropped", sweep=step.sweep, step=step.step)
        done.reason = "obsolete step"
        return done
    if decision == "resend_next":
        await _send_step(invocation, state, delay_s=0)
        done.reason = "the next step sent again"
        return done
    if decision == "retry_later":
        assert state.holder is not None
        delay = int(max(1.0, state.holder.until - time.time()) + 1)
        await _send_step(invocation, state, delay_s=delay, step=step.step)
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
    walk = _Walk(invocation, lease, state, started)
    async with lease.holding(invocation.deadline.remaining):
        while not lease.lost:
            reply = await walk.next()
            if reply is not None:
                return reply
    return _reply(state, walk.walked, "the sweep was taken over", started=started)


class _Walk:
    """One run's walk of a sweep it holds: a page at a time, each committed to the state."""

    def __init__(self, invocation: Invocation, lease: Lease, state: SweepState, started: float) -> None:
        settings = invocation.settings
        self.invocation, self.lease, self.state, self.started = invocation, lease, state, started
        self.outputs = invocation.outputs(state.bucket)
        self.calibration = Calibration.restore(settings.chars_per_token, state.calibration)
        self.run = Run(
            invocation,
            state.bucket,
            self.outputs,
            state.mode,
            self.calibration,
            max_tokens=state.max_tokens,
            tokens=state.run_tokens,
            sweep_tag=state.tag,
        )
        self.walked = Totals()  # this run's part, for its reply
        self.slowest_page = 0.0
        self.batches_sent = 0
        self.requests_seen = dict(invocation.storage.requests)

    async def next(self) -> dict[str, Any] | None:
        """One page, or the end of this run (its reply)."""
        state, run = self.state, self.run
        try:
            if state.mode == "queue" and await results.collect(
                self.invocation.storage, self.outputs.layout, state
            ):
                state.last_progress = time.time()
            if state.phase == "draining":
                return await _drain(self.invocation, self.lease, state, started=self.started)
            if (ending := await self._ending()) is not None:
                return ending
            page_started = time.monotonic()
            page = await _next_page(run, state, on_sent=self._remember_sent)
        except PipelineError as exc:
            # Listing or reading the bucket failed: this run stops, and the next tick resumes.
            run.fail(self.walked, "(bucket)", exc)
            reason = run.stopped or f"{getattr(exc, 'code', 'error')}: {redact(str(exc))[:200]}"
            return await _pause(self.lease, state, self.walked, reason, started=self.started)
        self.slowest_page = max(self.slowest_page, time.monotonic() - page_started)
        page.part.requests_add(requests_since(self.invocation.storage.requests, self.requests_seen))
        if state.found_counted:
            page.part.found = {}  # a page walked again: what it found was counted the first time
        state.totals.add(page.part)
        self.walked.add(page.part)
        state.run_tokens = run.tokens
        state.calibration = self.calibration.saved()
        if not page.complete:
            state.sent_through, state.found_counted = page.sent_through, True
            return await _pause(
                self.lease, state, self.walked, run.stopped or "time budget", started=self.started
            )
        _advance(state, page, full=state.prefix == self.invocation.settings.source_prefix)
        if _walked_all(state) and state.mode == "inline":
            return await _finish(self.invocation, self.lease, state, self.walked, started=self.started)
        await self.lease.write(state)
        return None

    async def _ending(self) -> dict[str, Any] | None:
        """Whether this run stops before the next page: it hands on (queue) or pauses (its budget)."""
        state, invocation = self.state, self.invocation
        if state.mode == "queue":
            elapsed = time.monotonic() - self.started
            if (
                elapsed + self.slowest_page > STEP_S
                or invocation.deadline.remaining() < 2 * self.slowest_page + 5
            ):
                return await _hand_on(
                    invocation, self.lease, state, self.walked, delay_s=0, started=self.started
                )
            if delay := _backlog_delay(invocation, state):
                return await _hand_on(
                    invocation, self.lease, state, self.walked, delay_s=delay, started=self.started
                )
        if not self.run.may_walk():
            reason = self.run.stopped or "time budget"
            return await _pause(self.lease, state, self.walked, reason, started=self.started)
        return None

    async def _remember_sent(self, key: str, page_so_far: Totals) -> None:
        """Every few batches, how far this page's queueing got: a walk of it again (after a crash)
        queues only what follows, and at most that few twice."""
        self.batches_sent += 1
        if self.batches_sent % _BATCHES_PER_MARK == 0:
            progress = self.state.model_copy(deep=True)
            progress.sent_through = key
            progress.totals.add(page_so_far)  # what the page queued so far is queued, whatever follows
            progress.run_tokens = self.run.tokens
            await self.lease.write(progress)


def _walked_all(state: SweepState) -> bool:
    return state.phase == "draining"


async def _next_page(run: Run, state: SweepState, *, on_sent: OnSent) -> PageDone:
    page_size = run.invocation.settings.reconcile_page_size
    order = ORDERS[state.order]
    if state.phase == "inline":
        return await inline_page(run, KeyRange(INLINE, state.after, order=order), page_size=page_size)
    return await source_page(
        run,
        KeyRange(state.prefix, state.after, order=order),
        page_size=page_size,
        sent_through=state.sent_through,
        on_sent=on_sent,
    )


def _advance(state: SweepState, page: PageDone, *, full: bool) -> None:
    """After a complete page: where the next one starts, or the next phase."""
    state.sent_through, state.found_counted = None, False
    if not page.last:
        state.after = page.range.through
    elif state.phase == "sources" and full:
        state.phase, state.after = "inline", None  # inline texts belong to the whole prefix's sweep
    else:
        state.phase, state.after = "draining", None


def _backlog_delay(invocation: Invocation, state: SweepState) -> int:
    """Seconds to wait before queueing more: what is queued and not yet reported back, beyond what
    the quota embeds in BACKLOG_S (at one request a document at least), is a backlog to let go by."""
    rps = invocation.settings.embeddings_rps
    waiting = state.totals.queued - state.totals.accounted
    if waiting <= rps * BACKLOG_S or time.time() - state.last_progress > DRAIN_PATIENCE_S:
        return 0
    return int(min(900.0, max(5.0, (waiting - rps * BACKLOG_S / 2) / rps)))


async def _drain(
    invocation: Invocation, lease: Lease, state: SweepState, *, started: float
) -> dict[str, Any]:
    """The walk is over: wait for the queue's instances to report, then the report."""
    waiting = state.totals.queued - state.totals.accounted
    stalled = time.time() - state.last_progress > DRAIN_PATIENCE_S
    if waiting <= 0 or stalled or state.mode == "inline":
        return await _finish(invocation, lease, state, Totals(), started=started)
    delay = int(min(60.0, max(3.0, waiting / invocation.settings.embeddings_rps)))
    return await _hand_on(invocation, lease, state, Totals(), delay_s=delay, started=started)


async def _hand_on(
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
    state.expect_by = time.time() + delay_s + HAND_ON_GRACE_S
    if await lease.write(state):
        await _send_step(invocation, state, delay_s=delay_s)
        log.info("sweep_handed_on", sweep=state.sweep, step=state.step, delay_s=delay_s, phase=state.phase)
    return _reply(state, walked, "handed on to the queue", started=started)


async def _send_step(
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


async def _pause(
    lease: Lease, state: SweepState, walked: Totals, reason: str, *, started: float
) -> dict[str, Any]:
    """This run stops; the sweep waits where it is for the next tick."""
    state.holder, state.expect_by, state.stopped_by = None, None, reason
    if await lease.write(state):
        log.info("sweep_paused", sweep=state.sweep, reason=reason, after=state.after)
    return _reply(state, walked, reason, started=started)


async def _finish(
    invocation: Invocation, lease: Lease, state: SweepState, walked: Totals, *, started: float
) -> dict[str, Any]:
    outputs = invocation.outputs(state.bucket)
    state.stopped_by = None
    reply = _reply(state, walked, None, started=started)
    report = _report(invocation, state)
    try:
        reply["report"] = await outputs.write_report(state.started_at, report)
        await results.discard(invocation.storage, outputs.layout, state)
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


def _report(invocation: Invocation, state: SweepState) -> dict[str, Any]:
    totals = state.totals
    price = invocation.settings.embeddings_price_per_1k_tokens
    return {
        "sweep": state.sweep,
        "started_at": state.started_at,
        "finished_at": utc_now(),
        "dry_run": False,
        "bucket": state.bucket,
        "prefix": state.prefix,
        "mode": state.mode,
        **totals.model_dump(exclude={"estimated_tokens"}),
        "unaccounted": max(0, totals.queued - totals.accounted),
        "runs": state.runs,
        "steps": state.step,
        "stopped_by": None,
        "estimated_cost": round(totals.tokens / 1000 * price, 6),
    }


def _reply(state: SweepState, walked: Totals, stopped_by: str | None, *, started: float) -> dict[str, Any]:
    """What a run answers: the sweep's totals so far, and this run's own part."""
    totals = state.totals
    return {
        "sweep": state.sweep,
        "dry_run": False,
        "bucket": state.bucket,
        "prefix": state.prefix,
        "mode": state.mode,
        "phase": state.phase,
        **totals.model_dump(exclude={"estimated_tokens"}),
        "this_run": {"pages": walked.pages, "outcomes": walked.outcomes, "tokens": walked.tokens},
        "stopped_by": stopped_by,
        "resume_after": state.after if stopped_by is not None else None,
        "report": None,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }


def _who(invocation: Invocation) -> str:
    import structlog  # noqa: PLC0415

    request = structlog.contextvars.get_contextvars().get("request_id")
    return str(request or "local")
