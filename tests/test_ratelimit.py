"""Unit: the rate limiter hands out the pacer's slots one at a time, on a fake clock."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from embedding_pipeline.clients.pacing import DROP, PROMOTE_S, RECHECK_S, SPACING, Estimate, Peers
from embedding_pipeline.clients.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_starts_are_spaced_one_interval_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(5):
        await limiter.acquire()
        starts.append(clock.now)
    assert [b - a for a, b in itertools.pairwise(starts)] == pytest.approx([1 / (10 * SPACING)] * 4)


async def test_concurrent_acquirers_take_slots_in_turn_at_the_pace_of_the_moment() -> None:
    """Slots are not booked ahead: a pace change reaches the very next waiter."""
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(clock.now)
        if len(starts) == 3:
            limiter.join(Peers(members=2))  # another instance joined: half the pace from now on

    await asyncio.gather(*(one() for _ in range(6)))
    gaps = [(b - a) * SPACING for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([0.1, 0.1, 0.2, 0.2, 0.2])


async def test_no_slot_is_taken_past_the_callers_deadline() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    assert await limiter.acquire(within=0.25)
    assert await limiter.acquire(within=0.25)  # 0.1 s away
    limiter.join(Peers(members=4))  # 2 a second for this one: the next slot is 0.5 s away
    assert not await limiter.acquire(within=0.25)
    assert clock.sleeps == [pytest.approx(1 / (10 * SPACING))]  # the refused acquire waited for nothing


async def test_concurrent_waiters_count_their_deadline_from_when_they_asked() -> None:
    """32 requests asked at once with 1 s left: those whose slot would come after it are refused,
    however long they waited for their turn (the wait counts)."""
    clock = FakeClock()

    async def sleep(seconds: float) -> None:  # as asyncio's does, it lets the other waiters run
        await asyncio.sleep(0)  # (first: all 32 ask at the same moment)
        await clock.sleep(seconds)

    limiter = RateLimiter(10, clock=clock, sleep=sleep)
    asked = clock.now
    taken: list[float] = []

    async def one() -> None:
        if await limiter.acquire(within=1.0):
            taken.append(clock.now)

    await asyncio.gather(*(one() for _ in range(32)))
    assert taken
    assert max(taken) <= asked + 1.0
    assert len(taken) == 10  # the slots within the second: at 10 a second spaced 2% wider, 0 to 0.92 s
    assert clock.now <= asked + 1.0


def test_a_429_drops_the_pace_and_tells_the_listener_once_per_overload() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    heard: list[Estimate] = []
    limiter.on_drop(heard.append)
    limiter.answered(refused=False)
    limiter.answered(refused=True)
    assert limiter.rate == pytest.approx(math.floor(9.5 * DROP) * SPACING)  # budget 9, dipping to 8
    clock.now += 0.3
    limiter.answered(refused=True)  # an echo of the same overload: no second drop
    assert len(heard) == 1
    assert heard[0].level == pytest.approx(9.5)
    limiter.on_drop(None)
    clock.now += 5
    limiter.answered(refused=True)
    assert len(heard) == 1


def test_a_quota_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_a_held_or_queued_member_looks_again_and_goes_when_its_share_allows() -> None:
    clock = FakeClock()

    async def sleep(seconds: float) -> None:  # lets the test change the share while one waits
        await clock.sleep(seconds)
        await asyncio.sleep(0)

    limiter = RateLimiter(10, clock=clock, sleep=sleep)
    start = clock.now
    limiter.join(Peers(members=2, rank=1, not_before=start + 0.35))
    await limiter.acquire()
    assert clock.now == pytest.approx(start + 0.35)  # held: not a moment before
    assert max(clock.sleeps) <= RECHECK_S + 1e-9  # rechecking meanwhile
    limiter.join(Peers(members=12, rank=11))  # queued: waits for its place ...
    waiter = asyncio.create_task(limiter.acquire())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiter.done()
    limiter.join(Peers(members=10, rank=9))  # ... which comes: then PROMOTE_S, for the window
    promoted = clock.now
    assert await waiter
    assert clock.now >= promoted + PROMOTE_S - 1e-9


async def test_a_queued_member_gives_up_at_its_callers_deadline() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    limiter.join(Peers(members=12, rank=11))
    assert not await limiter.acquire(within=0.5)
