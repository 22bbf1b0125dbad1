"""A client-side rate limiter in requests per second, shared by everything one instance sends.

A semaphore bounds how many requests are in flight, not how many start per second, and the Yandex
quota is a rate (10 requests per second by default). So requests are paced: each acquisition takes
the next free slot, 1/rate seconds after the previous one (the generic cell rate algorithm with no
burst). When the server still answers 429 (another instance shares the quota) the pace halves, then
recovers additively with each success: AIMD, as TCP does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

_MIN_SHARE = 0.05  # never slow below 5% of the configured rate
_RECOVERY_SHARE = 0.02  # each success gives back 2% of the configured rate


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._max_rate = rate
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    def reserve(self, within: float | None = None) -> float | None:
        """Take the next slot and return how long to wait for it; None, taking nothing, if that is
        longer than `within` seconds (the caller's deadline would pass first)."""
        now = self._clock()
        slot = max(now, self._next_slot)
        if within is not None and slot - now > within:
            return None
        self._next_slot = slot + 1.0 / self._rate
        return slot - now

    async def acquire(self, within: float | None = None) -> bool:
        """Wait for a slot; False if none comes within `within` seconds."""
        delay = self.reserve(within)
        if delay is None:
            return False
        if delay > 0:
            await self._sleep(delay)
        return True

    def throttled(self) -> None:
        """The server answered 429: halve the pace and push the next slot out by one new interval."""
        self._rate = max(self._max_rate * _MIN_SHARE, self._rate / 2)
        self._next_slot = max(self._next_slot, self._clock()) + 1.0 / self._rate

    def succeeded(self) -> None:
        if self._rate < self._max_rate:
            self._rate = min(self._max_rate, self._rate + self._max_rate * _RECOVERY_SHARE)
