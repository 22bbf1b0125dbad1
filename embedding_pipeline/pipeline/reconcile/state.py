"""A sweep's state, which is also its lease: one object per bucket and prefix, changed only by
conditional writes.

`{OUTPUT_PREFIX}_sweeps/{prefix_id}.json` says which sweep is under way, where its next page starts, what
it has found and done so far, and who works on it now (`holder`, until a time). A tick or a step
takes the sweep by writing the state with `If-None-Match: *` (there was none) or `If-Match` the
version it read, so two runs that start together cannot both win: the loser says that a sweep is in
progress and stops. The holder renews its hold while it works (`Lease.holding`), and a hold that is
not renewed ends by itself, so a crashed run cannot keep the sweep forever.

Between invocations the sweep moves as numbered steps: a step hands on by writing `step + 1` and no
holder, then sending the message of step `step + 1` (commit, then send: a crash between the two
leaves a state whose step nobody runs, which the redelivered message of the step before, or the
next tick, sends again). What a tick or a step message should do, given the state it read, is
decided by `on_tick` and `on_step`, without I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedding_pipeline import foreign
from embedding_pipeline.clients.message_queue import MAX_DELAY_S
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.models import utc_now
from embedding_pipeline.outputs.store import SMALL_OUTPUT_MAX_BYTES
from embedding_pipeline.pipeline.reconcile.ranges import OrderName
from embedding_pipeline.pipeline.reconcile.totals import Totals

log = get_logger()

HOLD_S = 300.0  # the longest a hold lasts unrenewed: how long a crashed run keeps the sweep
RENEW_S = 60.0
HAND_ON_GRACE_S = 180.0  # a step handed on should start within this (plus its delay): else a tick takes over
SKEW_S = 5.0  # the server's time as two instances read it may differ by this much

Phase = Literal["sources", "inline", "draining"]
TickDecision = Literal["start", "resume", "take_over", "busy"]
StepDecision = Literal["claim", "take_over", "retry_later", "resend_next", "drop"]


def prefix_id_of(bucket: str, prefix: str) -> str:
    """The name of a bucket and prefix in output keys: fixed length, whatever the prefix holds."""
    return hashlib.sha256(f"{bucket}\n{prefix}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def new_sweep_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


class Holder(BaseModel):
    by: str  # which invocation: for people reading the state
    until: float  # the server's time (clients/server_clock.py) at which the hold ends unless renewed


class SweepState(BaseModel):
    # Written with its JSON names: `scope` is the prefix id's name in states already in buckets.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    sweep: str
    prefix_id: str = Field(alias="scope")  # the bucket and prefix swept (prefix_id_of)
    bucket: str
    prefix: str
    mode: Literal["queue", "inline"]
    order: OrderName = "bytes"  # the server's key order (order.py): every page is judged in it
    started_at: str
    started: float = 0.0  # the server's time it started: summaries older than this are gone pages'
    phase: Phase = "sources"
    after: str | None = None  # the next page starts after this document
    sent_through: str | None = None  # of the page starting at `after`: documents queued already
    found_counted: bool = False  # the page starting at `after` was walked before: its findings counted
    step: int = 0
    holder: Holder | None = None
    expect_by: float | None = None  # handed on: its step should have started by then
    stopped_by: str | None = None  # why the last run paused (the next tick resumes)
    runs: int = 0  # ticks that started or resumed it
    run_tokens: int = 0  # the current run's tokens (estimated, for queued ones): its budget
    max_tokens: int
    # Draining: when results last came (the server's time; fresh_state sets it, and every state
    # written holds it: the default serves states made by hand).
    last_progress: float = Field(default_factory=time.time)
    counted: list[str] = Field(default_factory=list)  # results counted at the last commit, to delete
    calibration: dict[str, Any] = Field(default_factory=dict)
    totals: Totals = Field(default_factory=Totals)

    @property
    def tag(self) -> str:
        return f"{self.prefix_id}/{self.sweep}"

    def summary(self) -> dict[str, Any]:
        """For status and for a tick that finds the sweep busy."""
        return {
            "sweep": self.sweep,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "mode": self.mode,
            "started_at": self.started_at,
            "phase": self.phase,
            "after": self.after,
            "pages": self.totals.pages,
            "queued": self.totals.queued,
            "accounted": self.totals.accounted,
            "found": self.totals.found,
            "outcomes": self.totals.outcomes,
            "tokens": self.totals.tokens,
            "held_by": None if self.holder is None else self.holder.by,
            "stopped_by": self.stopped_by,
        }


def on_tick(state: SweepState | None, now: float) -> TickDecision:
    """What a timer tick does: start a sweep, resume a paused one, take over an abandoned one, or
    leave the one in progress alone."""
    if state is None:
        return "start"
    if state.holder is not None:
        return "busy" if state.holder.until > now else "take_over"
    if state.expect_by is None:
        return "resume"
    return "busy" if state.expect_by > now else "take_over"


def on_step(state: SweepState | None, sweep: str, step: int, now: float) -> StepDecision:
    """What the message of step `step` of sweep `sweep` does (messages may come twice, or late)."""
    if state is None or state.sweep != sweep or step > state.step:
        return "drop"  # another sweep's, or one a takeover has made obsolete
    if step < state.step:
        # The step this message ran was handed on; if nobody took the next one, its message may
        # never have been sent (the hand-over crashed between its commit and its send).
        if step == state.step - 1 and state.holder is None and state.expect_by is not None:
            return "resend_next"
        return "drop"
    if state.holder is None:
        return "claim" if state.expect_by is not None else "drop"  # a paused sweep waits for a tick
    if state.holder.until <= now:
        return "take_over"
    return "retry_later"  # held: this message's twin, or this message's crashed run, holds it


class Lease:
    """Reads and conditionally writes one sweep's state; `holding` renews the hold while work goes on."""

    def __init__(self, storage: ObjectStorage, layout: OutputLayout, prefix_id: str, *, by: str) -> None:
        self._storage = storage
        self.layout = layout
        self._bucket = layout.bucket
        self.key = layout.sweep_state(prefix_id)
        self.by = by
        self._etag: str | None = None
        self._state: SweepState | None = None
        self._lock = asyncio.Lock()
        self._remaining_s: Callable[[], float] | None = None  # while holding: the invocation's time left
        self.lost = False

    async def read(self) -> SweepState | None:
        found = await self._storage.get_with_info(self._bucket, self.key, max_bytes=SMALL_OUTPUT_MAX_BYTES)
        if found is None:
            self._etag = self._state = None
            return None
        data, info = found
        self._etag = info.etag
        try:
            self._state = _bounded(SweepState.model_validate_json(data), self.now(), self.key)
        except ValidationError:
            # Unreadable (a foreign or damaged object): replaced by the next sweep that starts.
            foreign.ignored(self.key, "not a sweep's state")
            self._state = None
        return self._state

    def now(self) -> float:
        """The server's time: what every time in the state is written in and judged by, so that a
        clock far off can neither hold the sweep past its hold nor end another's early."""
        return self._storage.server_clock.now()

    def hold(self, state: SweepState, deadline_s: float) -> None:
        """Mark `state` held by this run until its invocation ends (at most HOLD_S from now)."""
        state.holder = Holder(by=self.by, until=self.now() + min(max(deadline_s, 1.0), HOLD_S))
        state.expect_by = None

    async def write(self, state: SweepState) -> bool:
        """Write `state` over the version read or last written; False when another run wrote first
        (this one no longer holds the sweep, and must stop without touching it again)."""
        async with self._lock:
            return await self._write(state)

    async def _write(self, state: SweepState) -> bool:
        if self.lost:
            return False
        if self._remaining_s is not None and state.holder is not None and state.holder.by == self.by:
            self.hold(state, self._remaining_s())  # every write by the holder renews the hold
        body = state.model_dump_json().encode()
        etag = await self._storage.put(
            self._bucket,
            self.key,
            body,
            content_type="application/json",
            if_none_match=self._etag is None,
            if_match=self._etag,
        )
        if etag is None:
            self.lost = True
            log.warning("sweep_lease_lost", key=self.key)
            return False
        # A copy: the run goes on changing its own, and a renewal must write only what was committed.
        self._etag, self._state = etag, state.model_copy(deep=True)
        return True

    async def remove(self) -> None:
        async with self._lock:
            await self._storage.delete(self._bucket, self.key)
            self._etag = self._state = None

    @asynccontextmanager
    async def holding(self, remaining_s: Callable[[], float]) -> AsyncIterator[None]:
        """Renew the hold every RENEW_S while the block runs (a long page must not lose it)."""
        self._remaining_s = remaining_s
        task = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._remaining_s = None

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_S)
            async with self._lock:
                state = self._state
                if state is None or state.holder is None or state.holder.by != self.by or self.lost:
                    return
                try:
                    await self._write(state)
                except StorageError as exc:
                    log.warning("sweep_lease_not_renewed", reason=str(exc))


def _bounded(state: SweepState, now: float, key: str) -> SweepState:
    """The state with any time no honest writer could have written (non-finite, or further ahead
    than a hold or a hand-on lasts) taken as passed: a clock far off, or a foreign object, cannot
    keep the sweep from the others."""
    holder, expect_by = state.holder, state.expect_by
    if holder is not None and not (foreign.finite(holder.until) and holder.until <= now + HOLD_S + SKEW_S):
        foreign.ignored(key, "a hold that ends further ahead than a hold lasts")
        state.holder = Holder(by=holder.by, until=now)
    latest_hand_on = now + MAX_DELAY_S + HAND_ON_GRACE_S + SKEW_S
    if expect_by is not None and not (foreign.finite(expect_by) and expect_by <= latest_hand_on):
        foreign.ignored(key, "a hand-on expected further ahead than one is sent")
        state.expect_by = now
    if not (foreign.finite(state.last_progress) and state.last_progress <= now + SKEW_S):
        state.last_progress = now
    return state


def fresh_state(
    *,
    prefix_id: str,
    bucket: str,
    prefix: str,
    mode: Literal["queue", "inline"],
    order: OrderName,
    max_tokens: int,
    now: float,
) -> SweepState:
    return SweepState(
        sweep=new_sweep_id(),
        prefix_id=prefix_id,
        bucket=bucket,
        prefix=prefix,
        mode=mode,
        order=order,
        started_at=utc_now(),
        max_tokens=max_tokens,
        started=now,
        last_progress=now,
    )
