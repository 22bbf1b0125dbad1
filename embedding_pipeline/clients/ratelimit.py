"""The rate limiter every embeddings request of one instance goes through: the Pacer's async face.

A semaphore bounds how many requests are in flight, not how many start per second, and the quota is
a rate. So requests are paced (clients/pacing.py says how the pace is set): waiters take the
Pacer's slots one at a time, each when the one before it has come, so a change of pace (a 429, the
members changing) applies to the very next request, not after a queue of slots booked ahead. A
member held or waiting for its place (see `Peers`) looks at its share again every RECHECK_S.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from embedding_pipeline.clients.pacing import RECHECK_S, SPACING, Estimate, Pacer, Peers


class RateLimiter:
    def __init__(
        self,
        quota: float,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if quota <= 0:
            raise ValueError("quota must be positive")
        self.quota = quota  # the configured one (EMBEDDINGS_RPS): where the estimate starts
        # Wall-clock time: estimates carry times that other instances compare with their own.
        self._clock = clock
        self._sleep = sleep
        self.pacer = Pacer(quota, clock())
        self._turn = asyncio.Lock()
        self._on_drop: Callable[[Estimate], None] | None = None

    @property
    def rate(self) -> float:
        """Requests per second this instance may send now."""
        return self.pacer.rate(self._clock())

    @property
    def share(self) -> float:
        """This instance's part of the capacity a second, its ramp aside: the pace a debt of
        requests already counted (a PDF's pages) is paid off at (clients/ocr.py)."""
        now = self._clock()
        return max(self.pacer.capacity(now) / max(self.pacer.peers.members, 1), 0.01) * SPACING

    async def acquire(self, within: float | None = None) -> bool:
        """Wait for this instance's next slot; False, taking nothing, if it is more than `within`
        seconds away (the caller's deadline would pass first). `within` counts from the call: the
        wait for the turn is part of it (32 waiters at 10 a second would otherwise run 3 s over)."""
        give_up_at = None if within is None else self._clock() + within
        async with self._turn:
            now = self._clock()
            # Held or waiting for a place: look again soon, the share may change at any look.
            while self.pacer.waiting(now):
                if give_up_at is not None and self.pacer.peek(now) > give_up_at:
                    return False
                await self._sleep(min(self.pacer.peek(now) - now, RECHECK_S))
                now = self._clock()
            if give_up_at is not None and self.pacer.peek(now) > give_up_at:
                return False
            delay = self.pacer.next_slot(now) - now
            if delay > 0:
                await self._sleep(delay)
        return True

    def answered(self, *, refused: bool) -> None:
        """An answer came: a 429 or not. A 429 the others should hear of (Pacer.answered) is told
        to the listener."""
        news = self.pacer.answered(self._clock(), refused=refused)
        if news is not None and self._on_drop is not None:
            self._on_drop(news)

    def on_drop(self, listener: Callable[[Estimate], None] | None) -> None:
        """Who hears of a drop, or of a passing 429 (the quota share of the running invocation);
        None: nobody."""
        self._on_drop = listener

    def join(self, peers: Peers) -> None:
        self.pacer.join(peers, self._clock())
