"""Functional: the Message Queue trigger with object references, inline records, poison and continuations."""

from __future__ import annotations

import json

import httpx
import pytest

from devstack.events import queue_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import ConfigurationError, EmbeddingsError
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.support import RuntimeFactory, context, load_event, read_json

LONG_TEXT = "\n\n".join(
    f"Параграф {n}: выручка и прибыль компании в квартале {n}. Paragraph {n} about revenue and growth." * 3
    for n in range(30)
)


async def test_batch_with_one_poisoned_and_one_failing_message(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket, embeddings_max_attempts=2)
    await storage.put(s3_bucket, "incoming/report.md", "# Отчёт\n\nВсё хорошо.".encode())
    bodies = [json.dumps({"id": f"faq-{n}", "text": f"Вопрос номер {n} и ответ на него."}) for n in range(7)]
    bodies += [
        json.dumps({"key": "incoming/report.md"}),
        "this is not json",
        json.dumps({"id": "flaky", "text": "the API fails on this one"}),
    ]
    api.fail = lambda text: httpx.Response(503) if text == "the API fails on this one" else None

    with pytest.raises(EmbeddingsError):
        await dispatch(runtime, queue_event(*bodies), context())

    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-8.json")
    assert parked["reason"] == "body is not JSON"
    assert parked["body"] == "this is not json"
    for n in range(7):
        assert await storage.head(s3_bucket, f"embeddings/_inline/faq-{n}.manifest.json") is not None
    assert await storage.head(s3_bucket, "embeddings/incoming/report.md.manifest.json") is not None
    assert await storage.head(s3_bucket, "embeddings/_inline/flaky.manifest.json") is None

    # The queue delivers the whole batch again; only the failed message costs an API call now.
    api.fail = lambda _text: None
    api.texts.clear()
    reply = await dispatch(runtime, queue_event(*bodies), context())

    assert list(api.texts) == ["the API fails on this one"]
    outcomes = sorted(item["outcome"] for item in reply["documents"])
    assert outcomes == ["embedded"] + ["unchanged"] * 8
    assert reply["parked"] == 1


async def test_inline_record_goes_to_its_deterministic_key_with_metadata(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    body = {
        "id": "faq/отпуск",
        "text": "Как оформить отпуск?",
        "metadata": {"lang": "ru", "n": 3},
        "model": "query",
    }

    reply = await dispatch(runtime, queue_event(json.dumps(body, ensure_ascii=False)), context())

    assert reply["documents"][0]["outcome"] == "embedded"
    (record,) = await read_json(storage, s3_bucket, "embeddings/_inline/faq/отпуск.jsonl")
    assert record["id"] == "faq/отпуск#0"
    assert record["text"] == "Как оформить отпуск?"
    assert record["model"] == "emb://b1gtest/text-search-query/latest"
    assert record["metadata"] == {"lang": "ru", "n": 3}
    manifest = await read_json(storage, s3_bucket, "embeddings/_inline/faq/отпуск.manifest.json")
    assert manifest["metadata"] == {"lang": "ru", "n": 3}


async def test_legacy_event_shape_is_accepted(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    reply = await dispatch(runtime, load_event("queue_legacy"), context())
    assert reply["documents"][0]["outcome"] == "embedded"
    assert await storage.head(s3_bucket, "embeddings/_inline/faq-1.manifest.json") is not None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"foo": 1}', 'should be an object with "key"'),
        ('{"id": "x", "text": "   "}', "text is empty"),
        (json.dumps({"id": "x", "text": "a" * 300_000}), "at most 262144 characters"),
        ('{"key": "incoming/../../secret"}', "'..' segment"),
        ('{"id": "bad\\u0000id", "text": "t"}', "control characters"),
        ('{"key": "incoming/a.md", "extra": true}', "Extra inputs"),
        ("[1, 2]", "should be an object"),
        ("", "not JSON"),
    ],
)
async def test_poisoned_messages_are_parked_with_reason_and_body(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    body: str,
    reason: str,
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    reply = await dispatch(runtime, queue_event(body), context())
    assert reply == {"documents": [], "parked": 1}
    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-0.json")
    assert reason in parked["reason"]
    assert parked["body"] == body
    assert api.requests == 0


async def test_queue_trigger_without_a_bucket_raises_for_the_dlq(runtime: Runtime) -> None:
    with pytest.raises(ConfigurationError, match="SOURCE_BUCKET"):
        await dispatch(runtime, queue_event('{"key": "incoming/a.md"}'), context())


async def test_large_document_continues_through_the_queue(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    queue = FakeMessageQueue()
    key = "incoming/большой отчёт.md"
    await storage.put(s3_bucket, key, LONG_TEXT.encode())
    slow = make_runtime(
        transports=Transports(embeddings=api.transport, queue=queue.transport),
        source_bucket=s3_bucket,
        queue_url="https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs",
        embeddings_rps=20,
        deadline_margin_s=0,
    )

    # GIVEN an upload that cannot finish in a 0.5 s invocation at 20 requests per second
    reply = await dispatch(
        slow, load_event("storage_object_create", bucket=s3_bucket, keys=[key]), context(timeout_s=0.5)
    )

    # THEN the invocation succeeds and hands the rest over to the queue
    assert reply["documents"][0]["outcome"] == "continued"
    assert json.loads(queue.bodies[0]) == {"key": key, "bucket": s3_bucket, "continuation": 1}
    assert queue.sent[0]["Action"] == "SendMessage"
    assert queue.sent[0]["QueueUrl"] == "https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs"
    assert "AWS4-HMAC-SHA256" in queue.requests[0].headers["Authorization"]  # signed with the static keys
    first_part = api.embedded

    # WHEN the queue delivers the continuation (to instances with enough time), repeatedly if needed
    while queue.bodies and len(queue.bodies) < 50:
        body = queue.bodies.pop()
        queue.sent.pop()
        reply = await dispatch(slow, queue_event(body), context(timeout_s=1.0))

    # THEN the document completes, every chunk paid for once
    assert reply["documents"][0]["outcome"] == "embedded"
    assert 0 < first_part < api.embedded
    assert max(api.texts.values()) == 1
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    assert manifest["chunks"] == len(await read_json(storage, s3_bucket, f"embeddings/{key}.jsonl"))
