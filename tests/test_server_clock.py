"""Unit and functional: the server's clock as instances observe it (clients/server_clock.py), and the
shared state timed by it: a clock far off neither holds a sweep, nor a document, past its time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from devstack.s3server import S3Server
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.server_clock import TRUST_S, ServerClock
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.reconcile.state import Holder, Lease, fresh_state, on_tick
from embedding_pipeline.quota_share import QuotaShare


def _date(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(int(seconds), UTC), usegmt=True)


def test_a_synchronised_clock_is_trusted() -> None:
    clock = ServerClock(clock=lambda: 1000.4)
    clock.observe(_date(1000.0), 1000.3, 1000.4)
    assert clock.offset == 0.0
    assert clock.now() == 1000.4


def test_a_clock_an_hour_ahead_is_corrected_from_the_date_headers() -> None:
    local = [1000.0 + 3600]
    clock = ServerClock(clock=lambda: local[0])
    for step in range(40):  # answers every 0.05 s narrow the interval as they straddle seconds
        sent = 1000.0 + step * 0.05
        clock.observe(_date(sent + 0.01), sent + 3600, sent + 3600 + 0.02)
    assert abs(clock.offset + 3600) < 0.1
    assert abs(clock.now() - 1000.0) < 0.1


def test_a_skew_within_the_trust_is_not_corrected() -> None:
    clock = ServerClock(clock=lambda: 0.0)
    clock.observe(_date(1000.0), 1000.0 + TRUST_S / 2, 1000.0 + TRUST_S / 2 + 0.01)
    assert clock.offset == 0.0


def test_answers_without_a_date_change_nothing() -> None:
    clock = ServerClock(clock=lambda: 5.0)
    for header in (None, "", "not a date"):
        clock.observe(header, 4.0, 5.0)
    assert clock.offset == 0.0


def test_a_step_of_the_local_clock_starts_the_estimate_over() -> None:
    clock = ServerClock(clock=lambda: 0.0)
    clock.observe(_date(5000.0), 1000.0, 1000.1)
    clock.observe(_date(5000.0), 5000.0, 5000.1)  # the local clock jumped by 4000 s
    assert abs(clock.offset) < 1.1


async def test_every_storage_answer_tells_the_clock(s3_server: S3Server, s3_bucket: str) -> None:
    ahead = ServerClock(clock=lambda: time.time() + 3600)
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(
            http,
            s3_server.endpoint,
            sigv4_auth(s3_server.access_key, s3_server.secret_key, s3_server.region),
            server_clock=ahead,
        )
        for _ in range(3):
            await storage.head(s3_bucket, "absent")
    assert abs(ahead.now() - time.time()) < 2.0


def skewed_storage(
    storage: ObjectStorage, s3_server: S3Server, http: httpx.AsyncClient, skew_s: float
) -> ObjectStorage:
    """The same bucket, through an instance whose clock is `skew_s` off."""
    return ObjectStorage(
        http,
        s3_server.endpoint,
        sigv4_auth(s3_server.access_key, s3_server.secret_key, s3_server.region),
        server_clock=ServerClock(clock=lambda: time.time() + skew_s),
    )


@pytest.mark.parametrize("skew_s", [10.0, 3600.0, -3600.0])
async def test_a_member_whose_clock_is_off_counts_the_others(
    storage: ObjectStorage, s3_server: S3Server, s3_bucket: str, skew_s: float
) -> None:
    """A member 10 s ahead used to see every announcement as stale and pace alone."""
    layout = OutputLayout(s3_bucket, "embeddings/")
    async with httpx.AsyncClient() as http:
        off = skewed_storage(storage, s3_server, http, skew_s)
        for _ in range(20):  # answers that straddle the server's seconds pin its clock
            await off.head(s3_bucket, "absent")
            await asyncio.sleep(0.06)
        honest_limiter, off_limiter = RateLimiter(10), RateLimiter(10, clock=lambda: time.time() + skew_s)
        honest = QuotaShare(storage, layout, honest_limiter, instance="honest")
        skewed = QuotaShare(off, layout, off_limiter, instance="skewed", clock=lambda: time.time() + skew_s)
        await honest.join()
        await skewed.join()
        await asyncio.sleep(1.5)
        assert off_limiter.pacer.peers.members == 2
        assert honest_limiter.pacer.peers.members == 2
        await skewed.leave()
        await honest.leave()


async def test_a_hold_written_by_a_clock_far_ahead_ends_when_a_hold_does(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """A state whose hold ends an hour from now (a clock an hour ahead, before this version, or a
    foreign object) is taken for a hold that ended: another tick takes the sweep over at once."""
    layout = OutputLayout(s3_bucket, "embeddings/")
    lease = Lease(storage, layout, "0123456789abcdef", by="tick")
    state = fresh_state(
        prefix_id="0123456789abcdef",
        bucket=s3_bucket,
        prefix="incoming/",
        mode="inline",
        order="bytes",
        max_tokens=10,
        now=time.time(),
    )
    state.holder = Holder(by="skewed", until=time.time() + 3600)
    assert await lease.write(state)
    read = await Lease(storage, layout, "0123456789abcdef", by="other").read()
    assert read is not None
    assert on_tick(read, time.time()) == "take_over"


async def test_a_clock_far_ahead_holds_a_sweep_no_longer_than_a_hold(
    storage: ObjectStorage, s3_server: S3Server, s3_bucket: str
) -> None:
    layout = OutputLayout(s3_bucket, "embeddings/")
    async with httpx.AsyncClient() as http:
        off = skewed_storage(storage, s3_server, http, 3600.0)
        for _ in range(20):
            await off.head(s3_bucket, "absent")
            await asyncio.sleep(0.06)
        lease = Lease(off, layout, "0123456789abcdef", by="skewed")
        state = fresh_state(
            prefix_id="0123456789abcdef",
            bucket=s3_bucket,
            prefix="incoming/",
            mode="inline",
            order="bytes",
            max_tokens=10,
            now=lease.now(),
        )
        lease.hold(state, 60.0)
        assert state.holder is not None
        assert time.time() + 55 <= state.holder.until <= time.time() + 65
