"""Functional: a dry run estimates from sizes, calibrated on the bucket's own manifests, and reads
only a bounded sample of the kinds nothing calibrates yet (pipeline/reconcile/estimate.py)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import unquote

import httpx

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.pipeline.reconcile.estimate import SAMPLE_PER_KIND, Calibration
from embedding_pipeline.runtime import Transports
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context


class CountingTransport(httpx.AsyncBaseTransport):
    """The real transport to SeaweedFS, counting GETs of each object."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.gets: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "list-type" not in request.url.query.decode():
            self.gets[unquote(request.url.path).split("/", 2)[2]] += 1
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def paragraphs(number: int, words: int) -> str:
    return "\n\n".join(f"Paragraph {number}.{n}: " + " ".join(["слово", "word"] * words) for n in range(3))


async def test_a_dry_run_reads_no_calibrated_document_and_a_bounded_sample_of_the_rest(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    # GIVEN 10 Markdown documents embedded (their manifests calibrate .md), then 30 more, and 20
    # text files of a kind no manifest speaks for
    runtime = make_runtime(source_bucket=s3_bucket, chunk_max_tokens=500)
    for number in range(10):
        await storage.put(
            s3_bucket, f"incoming/old-{number:02d}.md", paragraphs(number, 20 + number).encode()
        )
    await dispatch(runtime, timer_event(None), context())
    for number in range(30):
        await storage.put(
            s3_bucket, f"incoming/new-{number:02d}.md", paragraphs(number, 15 + number).encode()
        )
    for number in range(20):
        await storage.put(s3_bucket, f"incoming/plain-{number:02d}.txt", paragraphs(number, 25).encode())
    counting = CountingTransport()
    dry = make_runtime(
        transports=Transports(embeddings=api.transport, storage=counting),
        source_bucket=s3_bucket,
        chunk_max_tokens=500,
    )
    paid_before = api.requests

    # WHEN a dry run estimates
    reply = await dispatch(dry, timer_event({"dry_run": True}), context())

    # THEN no new Markdown document was read, and only SAMPLE_PER_KIND text files
    assert api.requests == paid_before
    read = {key for key in counting.gets if key.startswith("incoming/")}
    assert not any(key.endswith(".md") for key in read)
    # each document sampled, and its metadata sidecar looked for (none here: a 404)
    assert len({key for key in read if not key.endswith(".metadata.json")}) == SAMPLE_PER_KIND
    assert len(read) == 2 * SAMPLE_PER_KIND
    assert reply["outcomes"] == {"would_embed": 50}
    estimate = reply["estimate"]
    assert estimate["method"].startswith("each document's size times the tokens a byte of its kind")
    assert estimate["kinds"]["md"]["from"] == "10 manifests"
    assert estimate["kinds"]["txt"]["from"] == f"a sample of {SAMPLE_PER_KIND} documents read"
    assert reply["key_order"] == "slash-first"  # found from the probes the first sweep left

    # AND the estimate is close to what embedding them then costs
    real = await dispatch(runtime, timer_event(None), context())
    assert real["outcomes"] == {"embedded": 50}
    assert abs(reply["tokens"] - real["tokens"]) <= 0.15 * real["tokens"], (reply["tokens"], real["tokens"])


def test_an_uncalibrated_kind_is_estimated_conservatively_and_said_so() -> None:
    calibration = Calibration(chars_per_token=3.0)
    assert calibration.estimate("incoming/a.bin", 3000) == 1000
    assert calibration.report()["uncalibrated_bytes"] == 3000
    calibration.learn_manifest("incoming/b.md", 1000, 250)
    assert calibration.estimate("incoming/c.md", 2000) == 500
    assert not calibration.wants_sample("incoming/d.md")
    restored = Calibration.restore(3.0, calibration.saved())
    assert restored.estimate("incoming/c.md", 2000) == 500
    assert Calibration.restore(3.0, {"kinds": {"md": ["x"]}}).kinds == {}  # a damaged state: learnt afresh
