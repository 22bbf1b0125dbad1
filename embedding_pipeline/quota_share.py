"""Instances that embed in bulk find each other in the bucket, to share the folder's quota.

No coordinator of our own and no further service: the bucket the pipeline already writes is the
board (quota_board.py): one announcement per instance embedding now, rewritten every REFRESH_S, and
the capacity estimate of the member refused last. An announcement's name starts with when the
instance joined (milliseconds, zero-padded), so names sort oldest first. A
member rewrites its announcement, lists the announcements (those modified within MEMBER_TTL_S
count), and reads the estimate, every REFRESH_S; that is three small requests a second per
instance, a fraction of a kopeck an hour. The pacer (clients/pacing.py) then takes its part of the
quota. A member that drops its estimate on a 429 writes it at once, so the others slow within a
second; one whose 429 came of the members changing writes its estimate as it stands, so that any
member probing above the quota on its own quiet stops (clients/pacing.py, `Pacer.answered`). An
instance leaves when its invocation ends (its announcement is deleted); one that crashed stops
counting MEMBER_TTL_S later.

Joining happens before the first request, so that a burst of short invocations (a folder of small
files: each instance embeds a few chunks and exits) never sends the quota many times over. A
newcomer writes its announcement first, waits JOIN_SETTLE_S, then lists: instances that started
within that long of each other all see each other, and split the quota from their first request.
Members that joined earlier may not have counted it yet: the newcomer sends nothing until each has
looked again (its announcement says when) or left, REFRESH_S and a little at most, then takes its
part; meanwhile they use the whole quota. A newcomer that finds no one may have missed others
announcing themselves at the same moment: it ramps up to the whole quota over RAMP_S
(clients/pacing.py), and looks again NEWCOMER_LOOK_S later. So none assumes for long that it is
alone, and a burst pays no slow start.

An instance whose invocation ends with more work likely to follow at once (a full queue batch:
the queue holds more) keeps its place instead: its announcement stays, and its next invocation, if
it comes within RESUME_S, takes the same name back at once, with no settle and no hold: its pacer
kept the share of its last look, and it looks again while its first requests go. The others never
saw it go, so nobody re-ranks and nobody waits (a newcomer that came meanwhile is held until this
member has looked, as for any earlier member): instances that run one short batch
after another (a backfill's references, ten to a batch) would otherwise each be held for about a
second per batch, a tenth of their time. If no invocation follows, the announcement lapses
MEMBER_TTL_S after its last write, as a crashed instance's does: a few seconds of its part unused.

Only bulk work joins: the HTTP API's requests stay outside (they are few, and retried quickly). A
failure to read or write here never fails the work: the instance goes on with what it knew, alone
at worst, and the pacer's 429 handling keeps it within the quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from embedding_pipeline.clients.pacing import Estimate, Peers
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.quota_board import QuotaBoard
from embedding_pipeline.redact import redact

log = get_logger()

REFRESH_S = 1.0
NEWCOMER_LOOK_S = 0.25  # a newcomer (or a member waiting for its place) looks again this soon
MEMBER_TTL_S = 5.0  # an announcement older than this is of an instance that is gone
JOIN_SETTLE_S = 0.1  # a newcomer lists this long after announcing itself: those that came with it are seen
CLOCK_SLACK_S = 0.02  # instances' clocks may differ by this much
# A member's next look comes within REFRESH_S (and its jitter) plus the round's own requests.
NEXT_LOOK_S = REFRESH_S * 1.1 + 0.2
# An instance that kept its place takes it back this soon after leaving: its announcement, last
# written NEXT_LOOK_S at most before it left, still counts for the others (MEMBER_TTL_S).
RESUME_S = MEMBER_TTL_S - NEXT_LOOK_S - 1.0


@dataclass(slots=True)
class Hold:
    """A newcomer's wait for the members that joined before it to count it."""

    announced: float = 0.0  # when its first announcement was written
    unaware: set[str] = field(default_factory=set)  # the earlier members that may not count it yet
    not_before: float = float("-inf")  # it sends nothing before this, while some are unaware


@dataclass(slots=True)
class KeptPlace:
    """What an instance remembers between invocations of the place it kept (one per instance)."""

    name: str | None = None
    left_at: float = float("-inf")
    # A member still held when it left (some earlier member had not seen it yet) is held on its return.
    hold: Hold = field(default_factory=Hold)


class QuotaShare:
    """This instance's membership, for one invocation: join on the first bulk request, leave at the end."""

    def __init__(
        self,
        storage: ObjectStorage,
        layout: OutputLayout,
        limiter: RateLimiter,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
        settle: Callable[[float], Awaitable[None]] = asyncio.sleep,
        kept: KeptPlace | None = None,
    ) -> None:
        # The bucket's times are the server's (clients/server_clock.py): a member whose clock is off
        # is read right by the others.
        self._board = QuotaBoard(
            storage, layout, clock, quota=limiter.quota, offset=lambda: storage.server_clock.offset
        )
        self._kept = kept if kept is not None else KeptPlace()
        self._limiter = limiter
        self._instance = instance
        self._clock = clock
        self._settle = settle
        # This member's name among the announcements: when it joined, then the instance.
        self.name = instance
        self._hold = Hold()
        self._written = float("-inf")  # when its announcement was last written
        self._ramp_from = float("-inf")
        self._joined = asyncio.Event()
        self._joining: asyncio.Lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._warned = False

    async def join(self) -> None:
        """Announce this instance and learn the others, once; later calls return at once."""
        if self._joined.is_set():
            return
        async with self._joining:
            if self._joined.is_set():
                return
            self._limiter.on_drop(self._publish)
            since, kept = self._clock(), self._kept
            first_look = NEWCOMER_LOOK_S  # soon after joining, for instances that started just after it
            if kept.name is not None and since - kept.left_at < RESUME_S:
                # The others still count it under this name, and its pacer kept the share of its
                # last look: it goes on as it was at once, and looks again meanwhile. (A newcomer
                # that came since is held until this member has looked.)
                self.name, self._hold, first_look = kept.name, kept.hold, 0.0
            else:
                if kept.name is not None:  # kept too long: gone for the others, or soon; not twice
                    await self._forget(kept.name)
                    self._limiter.join(Peers())
                self.name = self._board.member_name(since, self._instance)
                await self._look(since=since)
            kept.name = None
            self._loop = asyncio.create_task(self._refresh(first_look))
            self._joined.set()

    async def leave(self, *, keep_place: bool = False) -> None:
        """Stop announcing, and delete the announcement, so the others take our part at once; or,
        `keep_place` (more work likely to follow at once), leave it for the next invocation."""
        if self._loop is None:
            return
        self._loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop
        await self._board.published()
        self._limiter.on_drop(None)
        now = self._clock()
        if keep_place and now - self._written < NEXT_LOOK_S:
            # The share stays with the pacer too: the others count this member until it is back.
            self._kept.name, self._kept.left_at, self._kept.hold = self.name, now, self._hold
            return
        self._limiter.join(Peers())
        await self._forget(self.name)

    async def _forget(self, name: str) -> None:
        try:
            await self._board.forget(name)
        except StorageError as exc:
            self._warn(exc)

    async def _refresh(self, delay: float) -> None:
        while True:
            await asyncio.sleep(delay * (0.9 + 0.2 * random.random()))  # noqa: S311 - jitter
            await self._look()
            # Held or waiting for a place: a member that leaves should be replaced soon.
            delay = NEWCOMER_LOOK_S if self._limiter.pacer.waiting(self._clock()) else REFRESH_S

    async def _look(self, since: float | None = None) -> None:
        """One round; whatever fails in it leaves the member as it was: sharing only advises the
        pacer, and must never fail (nor park) the work it paces."""
        try:
            await self._round(since)
        except Exception as exc:
            self._warn(exc)

    async def _round(self, since: float | None) -> None:
        """Announce, count the members, read the estimate. The first round (`since`: when the
        instance joined) lists JOIN_SETTLE_S after announcing, and holds the newcomer until the
        members that joined before it have looked again."""
        board = self._board
        announced = self._written = await board.announce(self.name)
        if since is not None:
            # The list comes JOIN_SETTLE_S after the join began: what the others' names promise.
            self._hold.announced = announced
            await self._settle(max(0.0, since + JOIN_SETTLE_S - announced))
        members = {self.name} | await board.members(within_s=MEMBER_TTL_S)
        others = await board.estimate()
        if since is not None:
            # Those that may have listed before this announcement was there count without us until
            # their next look (or until they leave).
            self._hold.unaware = {
                name
                for name in members - {self.name}
                if board.joined_at(name) + JOIN_SETTLE_S < announced + CLOCK_SLACK_S
            }
            if self._hold.unaware:
                self._hold.not_before = announced + NEXT_LOOK_S
            # Found no one: perhaps others are announcing themselves this very moment. Ramp up.
            self._ramp_from = announced if len(members) == 1 else float("-inf")
        elif self._hold.unaware:
            try:
                # Those earlier members still here that have not looked since this one announced itself.
                self._hold.unaware = await self._board.not_looked_since(
                    self._hold.unaware & members, self._hold.announced + CLOCK_SLACK_S
                )
            except StorageError as exc:
                self._warn(exc)
                self._hold.unaware &= members
            if not self._hold.unaware:
                self._hold.not_before = float("-inf")
        names = sorted(members)
        self._limiter.join(
            Peers(len(names), others, names.index(self.name), self._hold.not_before, self._ramp_from)
        )

    def _publish(self, estimate: Estimate) -> None:
        """The pacer dropped its estimate, or had a 429 of a passing cause: tell the members."""
        self._board.publish_soon(estimate, on_failure=self._warn)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:  # once per invocation: the work goes on either way
            self._warned = True
            log.warning("quota_share_unavailable", reason=redact(f"{type(exc).__name__}: {exc}")[:300])
