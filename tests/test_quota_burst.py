"""Functional: a burst of short invocations shares the quota from its first request (issue 23).

Instances join in a real bucket (SeaweedFS). What would be timing (who announced first) is made
deterministic: the newcomers' settle is a barrier that opens once all of them have announced
themselves, and the pace is read from the pacer at chosen moments, not measured. The pacing rules
themselves are tested in simulated time in test_pacing.py and test_ratelimit.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from embedding_pipeline.clients.pacing import RAMP_S, RAMP_START, SPACING
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.quota_share import JOIN_SETTLE_S, NEXT_LOOK_S, RESUME_S, KeptPlace, QuotaShare
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, load_event

QUOTA = 10


class Barrier:
    """The newcomers' settle: returns once `count` of them have announced themselves."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.waits: list[float] = []
        self._all = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if len(self.waits) == self.count:
            self._all.set()
        await self._all.wait()


def member(
    storage: ObjectStorage,
    bucket: str,
    name: str,
    *,
    settle: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.time,
) -> tuple[QuotaShare, RateLimiter]:
    limiter = RateLimiter(QUOTA)
    layout = OutputLayout(bucket, "embeddings/")
    share = QuotaShare(storage, layout, limiter, instance=name, clock=clock, settle=settle)
    return share, limiter


@pytest.mark.parametrize("instances", [2, 8, 20])
async def test_newcomers_that_start_together_split_the_quota_from_their_first_request(
    storage: ObjectStorage, s3_bucket: str, instances: int
) -> None:
    """GIVEN N instances joining at once WHEN each has listed THEN each counts all N, none is held,
    and their paces together stay within the quota (the oldest 10 of 20 go, the rest queue)."""
    barrier = Barrier(instances)
    now = time.time()  # their clocks stand still: all join at the same moment, however slow the bucket
    members = [
        member(storage, s3_bucket, f"i{n:02d}", settle=barrier, clock=lambda: now) for n in range(instances)
    ]
    await asyncio.gather(*(share.join() for share, _ in members))
    assert len(barrier.waits) == instances
    assert all(0 <= wait <= JOIN_SETTLE_S for wait in barrier.waits)
    assert [limiter.pacer.peers.members for _, limiter in members] == [instances] * instances
    assert sorted(limiter.pacer.peers.rank for _, limiter in members) == list(range(instances))
    rates = [limiter.pacer.rate(now) for _, limiter in members]
    assert sum(rates) <= QUOTA * SPACING + 1e-9
    assert max(rates) <= math.ceil(QUOTA / instances) * SPACING + 1e-9
    assert sum(rate > 0 for rate in rates) == min(instances, QUOTA)  # all the quota's requests used
    assert all(limiter.pacer.peers.not_before == float("-inf") for _, limiter in members)
    for share, _ in members:
        await share.leave()


async def test_a_newcomer_that_finds_no_one_ramps_up_to_the_whole_quota_within_a_second(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    share, limiter = member(storage, s3_bucket, "alone")
    await share.join()
    started = limiter.pacer.peers.ramp_from
    assert started <= time.time()
    assert limiter.pacer.rate(started) == pytest.approx(QUOTA * SPACING * RAMP_START)
    assert limiter.pacer.rate(started + RAMP_S / 2) < QUOTA * SPACING
    assert limiter.pacer.rate(started + RAMP_S) == pytest.approx(QUOTA * SPACING)
    await share.leave()


async def test_newcomers_that_find_each_other_do_not_ramp(storage: ObjectStorage, s3_bucket: str) -> None:
    barrier = Barrier(2)
    members = [member(storage, s3_bucket, name, settle=barrier) for name in ("a", "b")]
    await asyncio.gather(*(share.join() for share, _ in members))
    assert all(limiter.pacer.peers.ramp_from == float("-inf") for _, limiter in members)
    for share, _ in members:
        await share.leave()


async def test_a_newcomer_waits_until_the_members_before_it_have_seen_it(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """GIVEN a member that joined earlier and has not looked since WHEN a newcomer joins THEN it is
    held (the earlier one counts without it); once the earlier one has looked, it is released."""
    late = [2.0]  # the earlier member's clock runs behind: its last look is before the newcomer
    earlier, _ = member(storage, s3_bucket, "earlier", clock=lambda: time.time() - late[0])
    await earlier.join()
    newcomer, limiter = member(storage, s3_bucket, "newcomer")
    await newcomer.join()
    share = limiter.pacer.peers
    assert share.members == 2
    assert time.time() < share.not_before <= time.time() + NEXT_LOOK_S
    assert limiter.pacer.waiting(time.time())
    late[0] = 0.0
    # The rounds that the members' loops run every NEWCOMER_LOOK_S, run here at once: the earlier
    # one looks (and sees the newcomer), then the newcomer looks and reads that in its announcement.
    await earlier._look()
    await newcomer._look()
    assert limiter.pacer.peers.not_before == float("-inf")
    assert not limiter.pacer.waiting(time.time())
    await newcomer.leave()
    await earlier.leave()


async def test_a_held_newcomer_is_released_when_the_members_before_it_leave(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    earlier, _ = member(storage, s3_bucket, "earlier", clock=lambda: time.time() - 2.0)
    await earlier.join()
    newcomer, limiter = member(storage, s3_bucket, "newcomer")
    await newcomer.join()
    assert limiter.pacer.waiting(time.time())
    await earlier.leave()
    await newcomer._look()
    assert not limiter.pacer.waiting(time.time())
    assert limiter.pacer.peers.members == 1
    await newcomer.leave()


async def test_the_first_request_of_an_invocation_waits_for_the_membership(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, storage: ObjectStorage, s3_bucket: str
) -> None:
    """The instance that embeds a small document knows the members before its first request."""
    runtime = make_runtime(source_bucket=s3_bucket)
    other, _ = member(storage, s3_bucket, "other")
    await other.join()
    seen: list[int] = []

    def first_requests(_text: str) -> None:
        seen.append(runtime.embeddings.limiter.pacer.peers.members)

    api.fail = first_requests
    text = "\n\n".join(f"Paragraph {n}: " + "words " * 60 for n in range(4))
    await storage.put(s3_bucket, "incoming/small.md", text.encode())
    # The other joined first: the newcomer is held until the other's next look, then goes.
    await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=["incoming/small.md"]), context()
    )
    assert seen
    assert seen[0] == 2
    await other.leave()


async def _announced(storage: ObjectStorage, bucket: str) -> list[str]:
    layout = OutputLayout(bucket, "embeddings/")
    return [info.key.rpartition("/")[2] async for info in storage.list_objects(bucket, layout.quota_members)]


async def test_an_instance_that_keeps_its_place_takes_it_back_without_a_hold(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """GIVEN an instance that left keeping its place (a full batch) WHEN its next invocation joins
    THEN it has its old name back, the others never saw it go, and it sends at once: a fresh
    newcomer would wait for the earlier member's next look."""
    skew = [-2.0]  # the earlier member looked long ago ...
    earlier, _ = member(storage, s3_bucket, "earlier", clock=lambda: time.time() + skew[0])
    await earlier.join()
    kept = KeptPlace()
    limiter = RateLimiter(QUOTA)
    layout = OutputLayout(s3_bucket, "embeddings/")
    first = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await first.join()
    assert limiter.pacer.waiting(time.time())  # a newcomer: held until the earlier one looks
    skew[0] = 0.0  # ... and now looks again: it has seen the newcomer
    await earlier._look()
    await first._look()
    assert not limiter.pacer.waiting(time.time())
    await first.leave(keep_place=True)
    assert kept.name == first.name
    assert sorted(await _announced(storage, s3_bucket)) == sorted([earlier.name, first.name])

    second = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await second.join()
    assert second.name == first.name
    assert dataclasses.asdict(kept)["name"] is None  # taken back: the next leave decides afresh
    assert limiter.pacer.peers.members == 2
    assert limiter.pacer.peers.not_before == float("-inf")
    assert not limiter.pacer.waiting(time.time())
    await second.leave()
    assert await _announced(storage, s3_bucket) == [earlier.name]
    await earlier.leave()


async def test_a_kept_place_is_taken_back_before_any_request_and_looked_at_meanwhile(
    storage: ObjectStorage, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look of a resumed place runs beside the invocation's first requests, not before them:
    between two queue batches it was a tenth of a second in which the instance sent nothing."""
    other, _ = member(storage, s3_bucket, "other")
    await other.join()
    kept, limiter = KeptPlace(), RateLimiter(QUOTA)
    layout = OutputLayout(s3_bucket, "embeddings/")
    first = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await first.join()
    await other._look()
    await first._look()
    await first.leave(keep_place=True)
    assert limiter.pacer.peers.members == 2  # the share stays with the pacer while the place is kept

    writes: list[str] = []
    put = storage.put

    async def counted_put(bucket: str, key: str, *args: object, **kwargs: object) -> object:
        writes.append(key)
        return await put(bucket, key, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "put", counted_put)
    second = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await second.join()
    assert writes == []  # nothing asked of the bucket before the first request may go
    assert not limiter.pacer.waiting(time.time())
    assert limiter.pacer.peers.members == 2
    for _ in range(100):  # the look comes at once, in the background
        if writes:
            break
        await asyncio.sleep(0.01)
    assert writes == [layout.quota_member(first.name)]
    await second.leave()
    await other.leave()


async def test_a_member_still_held_when_it_kept_its_place_is_held_on_its_return(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """A newcomer's hold lasts until the earlier members have seen it, whatever invocation it is in."""
    earlier, _ = member(storage, s3_bucket, "earlier", clock=lambda: time.time() - 2.0)  # never looks anew
    await earlier.join()
    kept, limiter = KeptPlace(), RateLimiter(QUOTA)
    layout = OutputLayout(s3_bucket, "embeddings/")
    first = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await first.join()
    held_until = limiter.pacer.peers.not_before
    assert held_until > time.time()
    await first.leave(keep_place=True)
    second = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await second.join()
    await asyncio.sleep(0.05)  # its first look: the earlier member has still not looked since
    assert limiter.pacer.peers.not_before == held_until
    assert limiter.pacer.waiting(time.time())
    await second.leave()
    await earlier.leave()


async def test_a_place_kept_past_resume_s_is_given_up_not_counted_twice(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    kept, limiter = KeptPlace(), RateLimiter(QUOTA)
    layout = OutputLayout(s3_bucket, "embeddings/")
    first = QuotaShare(storage, layout, limiter, instance="kept", kept=kept)
    await first.join()
    await first.leave(keep_place=True)
    assert await _announced(storage, s3_bucket) == [first.name]
    later = time.time() + RESUME_S + 0.1
    second = QuotaShare(storage, layout, limiter, instance="kept", kept=kept, clock=lambda: later)
    await second.join()
    assert second.name != first.name
    assert await _announced(storage, s3_bucket) == [second.name]  # the old one deleted, not counted
    assert limiter.pacer.peers.members == 1
    await second.leave()


@pytest.mark.parametrize(("documents", "kept"), [(10, True), (1, False)])
async def test_a_full_batch_keeps_the_instances_place_and_a_short_one_gives_it_up(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, documents: int, kept: bool
) -> None:
    """A batch of ten says the queue held more: another invocation likely follows at once."""
    runtime = make_runtime(source_bucket=s3_bucket)
    keys = [f"incoming/doc-{n}.md" for n in range(documents)]
    for n, key in enumerate(keys):
        await storage.put(s3_bucket, key, f"Document {n}: a short text to embed.".encode())
    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=keys), context()
    )
    assert [document["outcome"] for document in reply["documents"]] == ["embedded"] * documents
    announced = await _announced(storage, s3_bucket)
    place = runtime.kept_places.get(s3_bucket)
    assert place is not None
    if kept:
        assert place.name is not None
        assert announced == [place.name]
        # The next batch takes the same place back, and gives it up when it is short.
        await storage.put(s3_bucket, "incoming/next.md", b"One more short text.")
        await dispatch(
            runtime,
            load_event("storage_object_create", bucket=s3_bucket, keys=["incoming/next.md"]),
            context(),
        )
    assert place.name is None
    assert await _announced(storage, s3_bucket) == []


async def test_without_a_default_bucket_instances_meet_in_the_events_bucket(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """A function made in the console has a storage trigger and no SOURCE_BUCKET: its instances
    share the quota in the bucket the event names, as the Terraform deploy's do in SOURCE_BUCKET."""
    with capture_logs() as logs:
        runtime = make_runtime()  # no SOURCE_BUCKET, no OUTPUT_BUCKET
    assert [line["event"] for line in logs].count("quota_sharing_meets_in_event_buckets") == 1
    keys = [f"incoming/doc-{n}.md" for n in range(10)]  # a full batch: the place is kept, and seen
    for n, key in enumerate(keys):
        await storage.put(s3_bucket, key, f"Document {n}: a short text to embed.".encode())
    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=keys), context()
    )
    assert [document["outcome"] for document in reply["documents"]] == ["embedded"] * 10
    place = runtime.kept_places.get(s3_bucket)
    assert place is not None
    assert place.name is not None
    assert await _announced(storage, s3_bucket) == [place.name]
