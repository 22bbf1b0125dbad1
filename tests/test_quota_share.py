"""Functional: instances find each other in a real bucket (SeaweedFS) to share the quota.

Membership objects are real S3 objects under `{OUTPUT_PREFIX}_quota/`; the pacing they feed is
tested in simulated time in test_pacing.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from devstack.s3server import S3Server
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.pacing import DROP, SPACING
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.quota_share import MEMBER_TTL_S, QuotaShare
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, load_event, object_keys, request_event


def member(
    storage: ObjectStorage, bucket: str, name: str, clock: Callable[[], float] = time.time
) -> tuple[QuotaShare, RateLimiter]:
    limiter = RateLimiter(10)
    share = QuotaShare(storage, OutputLayout(bucket, "embeddings/"), limiter, instance=name, clock=clock)
    return share, limiter


async def test_members_count_each_other_and_split_the_quota(storage: ObjectStorage, s3_bucket: str) -> None:
    first, first_limiter = member(storage, s3_bucket, "first")
    second, second_limiter = member(storage, s3_bucket, "second")
    await first.join()
    assert first_limiter.pacer.peers.members == 1
    await second.join()
    assert second_limiter.pacer.peers.members == 2
    await asyncio.sleep(0.5)  # the first looks again soon after joining, for those that came with it
    assert first_limiter.pacer.peers.members == 2
    assert first_limiter.rate == pytest.approx(5 * SPACING)
    # Named by when they joined, so that the names sort oldest first.
    assert first.name < second.name
    assert first.name.endswith("-first")
    assert sorted(await object_keys(storage, s3_bucket, "embeddings/_quota/members/")) == [
        f"embeddings/_quota/members/{first.name}",
        f"embeddings/_quota/members/{second.name}",
    ]
    await second.leave()
    assert await object_keys(storage, s3_bucket, "embeddings/_quota/members/") == [
        f"embeddings/_quota/members/{first.name}"
    ]
    assert second_limiter.pacer.peers.members == 1  # alone again, without a look
    await asyncio.sleep(1.3)
    assert first_limiter.pacer.peers.members == 1  # the first took the whole quota back
    await first.leave()


async def test_a_drop_reaches_the_other_members(storage: ObjectStorage, s3_bucket: str) -> None:
    first, first_limiter = member(storage, s3_bucket, "first")
    second, second_limiter = member(storage, s3_bucket, "second")
    await first.join()
    await second.join()
    first_limiter.answered(refused=True)  # a 429: the estimate drops and is written at once
    await asyncio.sleep(1.3)  # the second's next look
    assert second_limiter.pacer.estimate.state == first_limiter.pacer.estimate.state
    assert second_limiter.pacer.capacity(time.time()) < 10 * (DROP + 0.1)
    await first.leave()
    await second.leave()


async def test_an_announcement_left_by_a_crashed_instance_stops_counting(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    crashed, _ = member(storage, s3_bucket, "crashed")
    await crashed.join()  # and never leaves
    later, limiter = member(storage, s3_bucket, "later", clock=lambda: time.time() + MEMBER_TTL_S + 2)
    await later.join()
    assert limiter.pacer.peers.members == 1
    await later.leave()


async def test_a_bucket_it_cannot_write_leaves_the_work_going_alone(
    s3_server: S3Server, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with httpx.AsyncClient() as http:
        refused = ObjectStorage(
            http, s3_server.endpoint, sigv4_auth(s3_server.access_key, "wrong", "us-east-1")
        )
        share, limiter = member(refused, s3_bucket, "lonely")
        await share.join()  # no exception: sharing is a help, not a condition
        await share.leave()
    assert limiter.pacer.peers.members == 1
    assert capsys.readouterr().out.count('"msg": "quota_share_unavailable"') == 1  # said once


async def test_bulk_work_joins_for_its_invocation_and_leaves_after(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, storage: ObjectStorage, s3_bucket: str
) -> None:
    """Two instances embedding at once in one bucket count each other; nothing stays behind."""
    first, second = make_runtime(source_bucket=s3_bucket), make_runtime(source_bucket=s3_bucket)
    seen: list[int] = []
    api.fail = lambda _text: seen.extend(r.embeddings.limiter.pacer.peers.members for r in (first, second))
    for key in ("incoming/a.md", "incoming/b.md"):
        text = "\n\n".join(f"Paragraph {n} of {key}: " + "words " * 60 for n in range(30))
        await storage.put(s3_bucket, key, text.encode())
    await asyncio.gather(
        dispatch(
            first, load_event("storage_object_create", bucket=s3_bucket, keys=["incoming/a.md"]), context()
        ),
        dispatch(
            second, load_event("storage_object_create", bucket=s3_bucket, keys=["incoming/b.md"]), context()
        ),
    )
    assert max(seen) == 2
    assert await object_keys(storage, s3_bucket, "embeddings/_quota/") == []
    assert "embeddings/incoming/a.md.manifest.json" in await object_keys(storage, s3_bucket)


async def test_interactive_requests_do_not_join(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket, http_api_keys="test-key-1")
    status, body = await call(
        runtime, request_event("POST", "/v1/embeddings", {"input": ["вопрос"]}), context()
    )
    assert status == 200, body
    assert await object_keys(storage, s3_bucket) == []


async def test_the_quota_area_is_no_document(make_runtime: RuntimeFactory, s3_bucket: str) -> None:
    runtime = make_runtime(source_bucket=s3_bucket, http_api_keys="test-key-1")
    status, body = await call(runtime, request_event("GET", "/v1/documents/_quota/members/first"))
    assert status == 404, body
