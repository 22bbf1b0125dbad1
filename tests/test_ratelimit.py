"""Unit: the rate limiter paces starts to its rate, slows on 429 and recovers."""

from __future__ import annotations

import asyncio

import pytest

from embedding_pipeline.clients.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_starts_are_spaced_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    waits = [limiter.reserve() for _ in range(5)]
    assert all(wait is not None and abs(wait - 0.1 * i) < 1e-9 for i, wait in enumerate(waits))


async def test_concurrent_acquirers_never_exceed_the_rate_in_any_second() -> None:
    limiter = RateLimiter(20)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(loop.time())

    await asyncio.gather(*(one() for _ in range(30)))
    starts.sort()
    # 30 starts at 20/s take at least 1.45 s; any 1-second window holds at most 20 (+1 for timer slop).
    assert starts[-1] - starts[0] >= 1.4
    for first in starts:
        in_window = [s for s in starts if first <= s < first + 1.0]
        assert len(in_window) <= 21


def test_throttle_halves_the_rate_and_success_recovers_it() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock)
    limiter.throttled()
    assert limiter.rate == 5
    limiter.throttled()
    assert limiter.rate == 2.5
    for _ in range(100):
        limiter.succeeded()
    assert limiter.rate == 10


def test_throttle_never_stops_the_limiter() -> None:
    limiter = RateLimiter(10, clock=FakeClock())
    for _ in range(50):
        limiter.throttled()
    assert limiter.rate == 0.5


def test_no_slot_is_taken_past_the_callers_deadline() -> None:
    limiter = RateLimiter(10, clock=FakeClock())
    assert [limiter.reserve(within=0.25) for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    assert limiter.reserve(within=0.25) is None  # 0.3 s away: refused, and not taken
    next_wait = limiter.reserve()
    assert next_wait is not None
    assert abs(next_wait - 0.3) < 1e-9
