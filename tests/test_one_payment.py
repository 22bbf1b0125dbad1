"""Functional, races: one payment per document however deliveries overlap (outputs/claims.py).

Each race runs ROUNDS times against SeaweedFS and the loopback emulator, which counts every text it
is asked to embed; races are probabilistic, so one round proves little. Instances are Runtimes of
their own (their own pools and clocks), started together on one event loop: the emulator's latency
keeps their runs overlapping.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import DocumentBusy
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.fakes import FakeMessageQueue
from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event

ROUNDS = 20
CHUNKS = 4


@pytest.fixture
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator(EmulatorConfig(rps=10**6, latency_s=0.05)) as running:
        yield running


def document(number: int, round_: int, chunks: int = CHUNKS) -> str:
    """`chunks` paragraphs, each a chunk of its own (the settings below), distinct in every round."""
    return "\n\n".join(
        f"Paragraph {part} of document {number} in round {round_}: the weather is calm, the wind light."
        for part in range(chunks)
    )


def instance(make_runtime: RuntimeFactory, emulator: YandexEmulator, bucket: str, **extra: Any) -> Runtime:
    return make_runtime(
        source_bucket=bucket,
        embeddings_url=emulator.url,
        embeddings_rps=10_000,
        chunk_max_tokens=40,
        transports=extra.pop("transports", Transports()),
        **extra,
    )


def paid_twice(emulator: YandexEmulator) -> dict[str, int]:
    return {text: count for text, count in emulator.stats.texts.items() if count > 1}


async def checkpoints_left(storage: ObjectStorage, bucket: str) -> list[str]:
    return await object_keys(storage, bucket, "embeddings/_checkpoints/")


async def test_an_upload_racing_a_sweeps_reference_pays_once(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """Row 1: the storage trigger and a sweep's queue reference embed the same version at once."""
    queue = FakeMessageQueue()
    uploads = instance(make_runtime, emulator, s3_bucket)
    references = instance(
        make_runtime,
        emulator,
        s3_bucket,
        queue_url="https://queue.test/q",
        transports=Transports(queue=queue.transport),
    )
    for round_ in range(ROUNDS):
        key = f"incoming/race-{round_}.md"
        await storage.put(s3_bucket, key, document(0, round_).encode())
        upload = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
        reference = load_event("queue_batch")
        reference["messages"] = reference["messages"][:1]
        reference["messages"][0]["details"]["message"]["body"] = json.dumps({"key": key, "bucket": s3_bucket})
        replies = await asyncio.gather(
            dispatch(uploads, upload, context()),
            dispatch(references, reference, context()),
            return_exceptions=True,
        )
        # One embeds; the other defers through the queue, or comes after and finds it current, or
        # (the storage trigger's instance has no queue) raises DocumentBusy: the trigger delivers
        # the event again, and it finds the document current.
        outcomes = []
        for reply in replies:
            answer = await dispatch(uploads, upload, context()) if isinstance(reply, DocumentBusy) else reply
            assert isinstance(answer, dict)
            outcomes.append(answer["documents"][0]["outcome"])
        assert sorted(outcomes) in (["deferred", "embedded"], ["embedded", "unchanged"])
        # A deferred reference comes back when the claim has lapsed or been given up: it pays nothing.
        for body in queue.take():
            again = load_event("queue_batch")
            again["messages"] = again["messages"][:1]
            again["messages"][0]["details"]["message"]["body"] = body
            later = await dispatch(references, again, context())
            assert later["documents"][0]["outcome"] == "unchanged"
    assert paid_twice(emulator) == {}
    assert len(emulator.stats.texts) == ROUNDS * CHUNKS
    assert await checkpoints_left(storage, s3_bucket) == []
    assert await object_keys(storage, s3_bucket, "embeddings/_claims/") == []


async def test_many_documents_under_two_storage_and_two_queue_instances_pay_once(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """Row 2 at its size: 200 documents of 5 chunks, each delivered by an upload's event and a sweep's
    reference at once, to two storage and two queue instances."""
    queue = FakeMessageQueue()
    workers = [
        instance(
            make_runtime,
            emulator,
            s3_bucket,
            queue_url="https://queue.test/q",
            transports=Transports(queue=queue.transport),
        )
        for _ in range(4)
    ]
    keys = [f"incoming/many-{number}.md" for number in range(200)]
    for number, key in enumerate(keys):
        await storage.put(s3_bucket, key, document(number, 0, chunks=5).encode())
    storage_events = [
        load_event("storage_object_create", bucket=s3_bucket, keys=keys[i::2]) for i in range(2)
    ]
    queue_events = []
    for i in range(2):
        event = load_event("queue_batch")
        template = event["messages"][0]
        event["messages"] = []
        for key in keys[i::2]:
            message = json.loads(json.dumps(template))
            message["details"]["message"]["body"] = json.dumps({"key": key, "bucket": s3_bucket})
            event["messages"].append(message)
        queue_events.append(event)
    await asyncio.gather(
        *(dispatch(workers[i], storage_events[i], context()) for i in range(2)),
        *(dispatch(workers[2 + i], queue_events[i], context()) for i in range(2)),
    )
    while bodies := queue.take():  # deferred references, delivered again
        event = load_event("queue_batch")
        template = event["messages"][0]
        event["messages"] = []
        for body in bodies:
            message = json.loads(json.dumps(template))
            message["details"]["message"]["body"] = body
            event["messages"].append(message)
        await dispatch(workers[0], event, context())
    assert paid_twice(emulator) == {}
    assert len(emulator.stats.texts) == 200 * 5
    for key in keys:
        assert (await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json"))["chunks"] == 5
    assert await checkpoints_left(storage, s3_bucket) == []


async def test_concurrent_inline_submits_of_one_id_leave_a_manifest_for_the_records_standing(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """Row 4: six callers submit one id with six texts at once (20 rounds); every round ends consistent, and
    every caller gets a status the README lists."""
    runtime = instance(make_runtime, emulator, s3_bucket)
    for round_ in range(ROUNDS):
        texts = [document(caller, round_) for caller in range(6)]
        replies = await asyncio.gather(
            *(
                call(runtime, request_event("POST", "/v1/documents", {"id": "faq-1", "text": text}))
                for text in texts
            )
        )
        statuses = sorted((status, body.get("status")) for status, body in replies)
        assert all(status in ((202, "embedded"), (202, "unchanged"), (409, None)) for status in statuses), (
            statuses
        )
        assert (202, "embedded") in statuses
        manifest = await read_json(storage, s3_bucket, "embeddings/_inline/faq-1.manifest.json")
        records = await storage.head(s3_bucket, "embeddings/_inline/faq-1.jsonl")
        assert records is not None
        assert manifest["records"]["etag"] == records.etag
        lines = await read_json(storage, s3_bucket, "embeddings/_inline/faq-1.jsonl")
        assert "\n\n".join(line["text"] for line in lines) in texts
    assert await checkpoints_left(storage, s3_bucket) == []


def queue_event(*bodies: str) -> dict[str, Any]:
    event = load_event("queue_batch")
    template = event["messages"][0]
    event["messages"] = []
    for body in bodies:
        message = json.loads(json.dumps(template))
        message["details"]["message"]["body"] = body
        event["messages"].append(message)
    return event


async def test_a_continuation_racing_a_re_uploads_event_pays_once(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    """Row 3: a large document's continuation and the ObjectCreate of its re-upload, at once."""
    queue = FakeMessageQueue()
    continuing = instance(
        make_runtime,
        emulator,
        s3_bucket,
        queue_url="https://queue.test/q",
        transports=Transports(queue=queue.transport),
    )
    uploads = instance(make_runtime, emulator, s3_bucket)
    for round_ in range(ROUNDS):
        key = f"incoming/large-{round_}.md"
        await storage.put(s3_bucket, key, document(1, round_).encode())  # the re-upload has landed
        continuation = json.dumps({"key": key, "bucket": s3_bucket, "continuation": 1})
        event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
        replies = await asyncio.gather(
            dispatch(continuing, queue_event(continuation), context()),
            dispatch(uploads, event, context()),
            return_exceptions=True,
        )
        if isinstance(replies[1], DocumentBusy):  # the trigger delivers it again
            assert (await dispatch(uploads, event, context()))["documents"][0]["outcome"] == "unchanged"
        while bodies := queue.take():
            await dispatch(continuing, queue_event(*bodies), context())
    assert paid_twice(emulator) == {}
    assert len(emulator.stats.texts) == ROUNDS * CHUNKS
    assert await checkpoints_left(storage, s3_bucket) == []


async def test_reconcile_removes_checkpoints_no_run_owns_and_keeps_a_live_runs(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket)
    for key in ("incoming/left.md", "incoming/working.md"):
        await storage.put(
            s3_bucket, key, document(0, 0).encode() if "left" in key else document(1, 0).encode()
        )
    first = await dispatch(runtime, timer_event(None), context())
    assert first["outcomes"] == {"embedded": 2}
    part = b'{"content_hash": "a", "model": "m", "tokens": 1, "embedding": [0.5]}\n'
    # A part a crashed run left beside a current document, and one beside a document a run holds now.
    await storage.put(s3_bucket, "embeddings/_checkpoints/incoming/left.md/dead-000001.jsonl", part)
    await storage.put(s3_bucket, "embeddings/_checkpoints/incoming/working.md/live-000001.jsonl", part)
    claim = json.dumps({"holder": "live", "by": "another", "version": None, "until": time.time() + 15})
    await storage.put(s3_bucket, "embeddings/_claims/incoming/working.md.json", claim.encode())
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["checkpoints_removed"] == 1
    assert reply["outcomes"] == {}
    assert await checkpoints_left(storage, s3_bucket) == [
        "embeddings/_checkpoints/incoming/working.md/live-000001.jsonl"
    ]
