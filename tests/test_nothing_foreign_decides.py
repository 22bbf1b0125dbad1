"""Functional: nothing outside a document decides what becomes of it, and a change of settings that
shapes vectors re-embeds for real (SeaweedFS, the loopback emulator counting texts).

- a foreign or corrupt `_quota/estimate.json` is ignored: the document is embedded, never parked;
- a document parked for an unexpected error is tried again by reconcile;
- a stray object beside the key-order probes is ignored;
- EMBEDDINGS_DIMENSIONS changed: no previous vector is reused; a value the model does not answer
  stops the run before anything is rewritten; a real change re-embeds every text;
- with SOURCE_PREFIX empty, keys under the function's reserved names are no sources;
- two deployments with other settings on one output area: the second stops, touching nothing;
  an output of another deployment is never taken for a source;
- metadata that would push a manifest past what is read back is refused at the boundary.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event

KEY = "incoming/handbook.md"
TEXT = "\n\n".join(f"Section {n}: " + "the office opens at nine and closes at six " * 6 for n in range(3))


@pytest.fixture
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator(EmulatorConfig(rps=10**6)) as running:
        yield running


def instance(
    make_runtime: RuntimeFactory, emulator: YandexEmulator, bucket: str, **settings: object
) -> Runtime:
    values: dict[str, Any] = {
        "source_bucket": bucket,
        "embeddings_url": emulator.url,
        "chunk_max_tokens": 40,
        "transports": Transports(),
    }
    values.update(settings)
    return make_runtime(**values)


async def upload(runtime: Runtime, storage: ObjectStorage, bucket: str, key: str = KEY) -> dict[str, object]:
    await storage.put(bucket, key, TEXT.encode())
    reply = await dispatch(runtime, load_event("storage_object_create", bucket=bucket, keys=[key]), context())
    result: dict[str, object] = reply["documents"][0]
    return result


@pytest.mark.parametrize("level", ["0.001", "1e300", "Infinity", "NaN", "-5"])
async def test_a_foreign_quota_estimate_is_ignored(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator, level: str
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket, embeddings_rps=10)
    estimate = f'{{"level": {level}, "low": {level}, "dropped_at": 0, "refused_at": 0, "ceiling": {level}}}'
    await storage.put(s3_bucket, "embeddings/_quota/estimate.json", estimate.encode())
    result = await upload(runtime, storage, s3_bucket)
    assert result["outcome"] == "embedded"
    assert await object_keys(storage, s3_bucket, "embeddings/_errors/") == []


async def test_a_quota_estimate_from_the_future_is_ignored(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """A member whose clock ran an hour ahead would otherwise pin the others' estimate for an hour."""
    import time  # noqa: PLC0415

    runtime = instance(make_runtime, emulator, s3_bucket, embeddings_rps=10)
    ahead = time.time() + 3600
    estimate = {"level": 2.0, "low": 1.0, "dropped_at": ahead, "refused_at": ahead, "ceiling": 200.0}
    await storage.put(s3_bucket, "embeddings/_quota/estimate.json", json.dumps(estimate).encode())
    assert (await upload(runtime, storage, s3_bucket))["outcome"] == "embedded"
    assert runtime.embeddings.limiter.pacer.estimate.state.level == 10.0  # its own, not the pinned 2


async def test_a_document_parked_for_an_unexpected_error_is_tried_again(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket)
    assert (await upload(runtime, storage, s3_bucket))["outcome"] == "embedded"
    manifest = await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json")
    await storage.delete(s3_bucket, f"embeddings/{KEY}.manifest.json")
    parked = {
        "source": manifest["source"],
        "error": "unexpected_error",
        "reason": "ValueError: something foreign in the bucket",
        "failed_at": "2026-01-01T00:00:00Z",
        "fingerprint": manifest["fingerprint"],
    }
    await storage.put(s3_bucket, f"embeddings/_errors/{KEY}.json", json.dumps(parked).encode())
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["found"]["parked_retry"] == 1
    assert reply["outcomes"].get("embedded") == 1
    assert await object_keys(storage, s3_bucket, "embeddings/_errors/") == []


async def test_a_stray_object_beside_the_order_probes_is_ignored(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket)
    await storage.put(s3_bucket, KEY, TEXT.encode())
    assert (await dispatch(runtime, timer_event(None), context()))["outcomes"]["embedded"] == 1
    await storage.put(s3_bucket, "embeddings/_sweeps/order/stray", b"someone's")
    await storage.put(s3_bucket, "incoming/new.md", TEXT.replace("office", "shop").encode())
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["stopped_by"] is None
    assert reply["outcomes"] == {"embedded": 1}


async def test_a_change_of_dimensions_reuses_no_vector_and_a_wrong_one_stops_the_run(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    before = instance(make_runtime, emulator, s3_bucket)
    assert (await upload(before, storage, s3_bucket))["outcome"] == "embedded"
    manifest = await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json")
    requests = emulator.stats.requests
    # The same model, EMBEDDINGS_DIMENSIONS set to what it does not answer (it answers 256).
    wrong = instance(make_runtime, emulator, s3_bucket, embeddings_dimensions=384)
    reply = await dispatch(wrong, timer_event(None), context())
    assert reply["stopped_by"] is not None
    assert "configuration problem" in reply["stopped_by"]
    assert 1 <= emulator.stats.requests - requests <= 2  # known after the first answer and its canary
    assert await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json") == manifest
    assert await object_keys(storage, s3_bucket, "embeddings/_errors/") == []


async def test_a_real_change_of_dimensions_re_embeds_every_text(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    with YandexEmulator(EmulatorConfig(rps=10**6, dimensions=256)) as small:
        before = instance(make_runtime, small, s3_bucket)
        assert (await upload(before, storage, s3_bucket))["outcome"] == "embedded"
    with YandexEmulator(EmulatorConfig(rps=10**6, dimensions=384)) as large:
        after = instance(make_runtime, large, s3_bucket, embeddings_dimensions=384)
        reply = await dispatch(after, timer_event(None), context())
        assert reply["outcomes"] == {"embedded": 1}
        records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
        # Nothing reused from the 256-long vectors: every distinct text paid for again, once.
        assert large.stats.ok == len({record["text"] for record in records})
    assert {len(record["embedding"]) for record in records} == {384}


async def test_with_no_source_prefix_the_reserved_names_are_no_sources(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket, source_prefix="")
    status, _ = await call(runtime, request_event("POST", "/v1/documents", {"id": "faq-1", "text": TEXT}))
    assert status == 202
    inline = await read_json(storage, s3_bucket, "embeddings/_inline/faq-1.manifest.json")
    for key in ("_inline/faq-1", "_errors/x.md", "_checkpoints/y.md", "_reports/z.md", "_claims/w.md"):
        await storage.put(s3_bucket, key, b"a user's own file in a folder named like an output area")
        event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
        assert (await dispatch(runtime, event, context()))["ignored"] == 1
    await storage.put(s3_bucket, "notes.md", TEXT.encode())
    first = await dispatch(runtime, timer_event(None), context())
    assert first["outcomes"] == {"embedded": 1}
    requests = emulator.stats.requests
    second = await dispatch(runtime, timer_event(None), context())
    assert second["outcomes"] == {}
    assert second["orphans_removed"] == 0
    assert emulator.stats.requests == requests
    assert await read_json(storage, s3_bucket, "embeddings/_inline/faq-1.manifest.json") == inline


async def test_a_second_deployment_with_other_settings_stops_and_touches_nothing(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    first = instance(make_runtime, emulator, s3_bucket, deployment_name="first")
    assert (await upload(first, storage, s3_bucket))["outcome"] == "embedded"
    manifest = await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json")
    assert manifest["deployment"] == "first"
    requests = emulator.stats.requests
    second = instance(make_runtime, emulator, s3_bucket, deployment_name="second", chunk_max_tokens=60)
    for _tick in range(2):
        reply = await dispatch(second, timer_event(None), context())
        assert "configuration problem" in (reply["stopped_by"] or "")
    assert emulator.stats.requests == requests
    assert await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json") == manifest
    # The first goes on as it was: nothing to do.
    assert (await dispatch(first, timer_event(None), context()))["outcomes"] == {}


async def test_an_output_of_another_deployment_is_never_a_source(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """One deployment's outputs lie inside another's sources (`vectors/` under SOURCE_PREFIX "")."""
    writer = instance(make_runtime, emulator, s3_bucket, deployment_name="writer", output_prefix="vectors/")
    assert (await upload(writer, storage, s3_bucket))["outcome"] == "embedded"
    requests = emulator.stats.requests
    reader = instance(make_runtime, emulator, s3_bucket, deployment_name="reader", source_prefix="")
    reply = await dispatch(reader, timer_event(None), context())
    assert reply["outcomes"].get("refused", 0) >= 2  # the writer's records and manifest, at least
    assert reply["outcomes"].get("embedded") == 1  # the source itself, the reader's own to embed
    records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
    assert emulator.stats.requests - requests == len({record["text"] for record in records})
    assert not any(key.startswith("embeddings/vectors/") for key in await object_keys(storage, s3_bucket))


async def test_metadata_too_large_for_a_manifest_is_refused_at_the_boundary(
    make_runtime: RuntimeFactory, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket)
    metadata = {f"field{n}": "x" * 1000 for n in range(70)}
    status, body = await call(
        runtime, request_event("POST", "/v1/documents", {"id": "big", "text": "hello", "metadata": metadata})
    )
    assert status == 400
    assert "metadata" in body["error"]["message"]
    assert "65536" in body["error"]["message"]
    assert emulator.stats.requests == 0
