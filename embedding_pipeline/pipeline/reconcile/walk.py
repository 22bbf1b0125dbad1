"""One run's walk of a sweep it holds: a page at a time (page.py, inline_page.py), each committed
to the sweep's state, until the sweep ends, pauses or hands on (stopping.py)."""

from __future__ import annotations

import time
from typing import Any

from embedding_pipeline.clients.message_queue import MAX_DELAY_S
from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.pipeline.reconcile import results
from embedding_pipeline.pipeline.reconcile.actions import OnSent, SweepRun
from embedding_pipeline.pipeline.reconcile.estimate import Calibration
from embedding_pipeline.pipeline.reconcile.inline_page import inline_page
from embedding_pipeline.pipeline.reconcile.inventory import INLINE
from embedding_pipeline.pipeline.reconcile.page import PageDone, source_page
from embedding_pipeline.pipeline.reconcile.ranges import ORDERS, KeyRange
from embedding_pipeline.pipeline.reconcile.state import Lease, SweepState
from embedding_pipeline.pipeline.reconcile.stopping import DRAIN_PATIENCE_S, drain, finish, hand_on, pause
from embedding_pipeline.pipeline.reconcile.totals import Totals, requests_since
from embedding_pipeline.redact import redact

STEP_S = 45.0  # a queue-mode step walks this long at most (invocations stay under 60 s)
BACKLOG_S = 60.0  # queue no more than the quota can embed in this long ahead of the instances
_BATCHES_PER_MARK = 10  # a page in the queue notes how far it got every this many batches of ten


class SweepWalk:
    """One run's walk of a sweep it holds: a page at a time, each committed to the state."""

    def __init__(self, invocation: Invocation, lease: Lease, state: SweepState, started: float) -> None:
        settings = invocation.settings
        self.invocation, self.lease, self.state, self.started = invocation, lease, state, started
        self.outputs = invocation.outputs(state.bucket)
        self.calibration = Calibration.restore(settings.chars_per_token, state.calibration)
        self.run = SweepRun(
            invocation,
            state.bucket,
            self.outputs,
            state.mode,
            self.calibration,
            max_tokens=state.max_tokens,
            tokens=state.run_tokens,
            sweep_tag=state.tag,
            prefix_id=state.prefix_id,
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
                state.last_progress = self.lease.now()
            if state.phase == "draining":
                return await drain(self.invocation, self.lease, state, started=self.started)
            if (ending := await self._ending()) is not None:
                return ending
            page_started = time.monotonic()
            page = await _next_page(run, state, on_sent=self._remember_sent)
        except PipelineError as exc:
            # Listing or reading the bucket failed: this run stops, and the next tick resumes.
            run.fail(self.walked, "(bucket)", exc)
            reason = run.stopped or f"{getattr(exc, 'code', 'error')}: {redact(str(exc))[:200]}"
            return await pause(self.lease, state, self.walked, reason, started=self.started)
        self.slowest_page = max(self.slowest_page, time.monotonic() - page_started)
        page.part.requests_add(requests_since(self.invocation.storage.requests, self.requests_seen))
        if state.found_counted:
            page.part.found = {}  # a page walked again: what it found was counted the first time
        state.totals.add(page.part)
        self.walked.add(page.part)
        self.invocation.metrics.add_findings(state.bucket, page.part.found)  # for Monitoring
        state.run_tokens = run.tokens
        state.calibration = self.calibration.saved()
        if not page.complete:
            state.sent_through, state.found_counted = page.sent_through, True
            return await pause(
                self.lease, state, self.walked, run.stopped or "time budget", started=self.started
            )
        _advance(state, page, full=state.prefix == self.invocation.settings.source_prefix)
        if _walked_all(state) and state.mode == "inline":
            return await finish(self.invocation, self.lease, state, self.walked, started=self.started)
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
                return await hand_on(
                    invocation, self.lease, state, self.walked, delay_s=0, started=self.started
                )
            if delay := _backlog_delay(invocation, state, self.lease.now()):
                return await hand_on(
                    invocation, self.lease, state, self.walked, delay_s=delay, started=self.started
                )
        if not self.run.may_walk():
            reason = self.run.stopped or "time budget"
            return await pause(self.lease, state, self.walked, reason, started=self.started)
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


async def _next_page(run: SweepRun, state: SweepState, *, on_sent: OnSent) -> PageDone:
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


def _backlog_delay(invocation: Invocation, state: SweepState, now: float) -> int:
    """Seconds to wait before queueing more: what is queued and not yet reported back, beyond what
    the quota embeds in BACKLOG_S (at one request a document at least), is a backlog to let go by."""
    rps = invocation.settings.embeddings_rps
    waiting = state.totals.queued - state.totals.accounted
    if waiting <= rps * BACKLOG_S or now - state.last_progress > DRAIN_PATIENCE_S:
        return 0
    return int(min(MAX_DELAY_S, max(5.0, (waiting - rps * BACKLOG_S / 2) / rps)))
