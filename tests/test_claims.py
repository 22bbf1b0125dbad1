"""Functional: one run at a time per document (outputs/claims.py), against SeaweedFS: a claim is
taken once, a live one is left alone, a lapsed, foreign or far-future one is taken over, and a run
gives its claim up however it ends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs import claims
from embedding_pipeline.outputs.claims import HOLD_S, DocumentClaim, held
from embedding_pipeline.outputs.layout import OutputLayout

KEY = "incoming/report.md"


def claim_of(storage: ObjectStorage, bucket: str, by: str = "run") -> DocumentClaim:
    return DocumentClaim(storage, OutputLayout(bucket, "embeddings/").document(KEY), by=by, version="v1")


async def test_one_run_takes_the_claim_and_the_other_finds_it_live(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    first, second = claim_of(storage, s3_bucket, "first"), claim_of(storage, s3_bucket, "second")
    assert await first.take() is None
    other = await second.take()
    assert other is not None
    assert other.by == "first"
    assert time.time() < other.until <= time.time() + HOLD_S + 1
    assert await held(storage, OutputLayout(s3_bucket, "embeddings/").document(KEY))


@pytest.mark.parametrize(
    "standing",
    [
        {"holder": "gone", "by": "crashed", "version": "v0", "until": 1.0},  # lapsed long ago
        {"holder": "x", "by": "skewed", "version": "v0", "until": time.time() + 3600},  # a clock far ahead
        {"holder": "x", "by": "x", "version": None, "until": float("nan")},
        "not a claim at all",
    ],
)
async def test_a_lapsed_or_foreign_claim_is_taken_over(
    storage: ObjectStorage, s3_bucket: str, standing: object
) -> None:
    keys = OutputLayout(s3_bucket, "embeddings/").document(KEY)
    body = standing if isinstance(standing, str) else json.dumps(standing)
    await storage.put(s3_bucket, keys.claim, body.encode())
    claim = claim_of(storage, s3_bucket)
    assert await claim.take() is None
    assert json.loads(await storage.get(s3_bucket, keys.claim, max_bytes=4096) or b"")["by"] == "run"


async def test_the_claim_is_given_up_when_the_run_ends_even_by_an_error(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    keys = OutputLayout(s3_bucket, "embeddings/").document(KEY)
    claim = claim_of(storage, s3_bucket)
    assert await claim.take() is None
    with pytest.raises(RuntimeError):
        async with claim.holding():
            raise RuntimeError("the run failed")
    assert await storage.head(s3_bucket, keys.claim) is None
    assert not await held(storage, keys)


async def test_a_claim_taken_over_by_another_run_is_not_given_up_by_the_first(
    storage: ObjectStorage, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run stalled past its claim's end; the second took it over: when the first ends,
    the claim it gives up is only its own."""
    monkeypatch.setattr(claims, "HOLD_S", 0.5)
    keys = OutputLayout(s3_bucket, "embeddings/").document(KEY)
    first, second = claim_of(storage, s3_bucket, "first"), claim_of(storage, s3_bucket, "second")
    assert await first.take() is None
    await asyncio.sleep(1.0)
    assert await second.take() is None  # the first's claim lapsed
    async with first.holding():
        pass
    record = json.loads(await storage.get(s3_bucket, keys.claim, max_bytes=4096) or b"")
    assert record["by"] == "second"
