"""Functional: usage counts what was paid, and an inline text that ran out of time is finished.

A manifest's usage is the true cost of its version of the document, across invocations: a text
repeated in a document is paid once, a text two documents of one batch share is paid once, and
vectors paid for by an earlier invocation (through the checkpoint) are billed, not "reused".
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.events import queue_event, timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsError
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event


def tokens_of(text: str) -> int:
    return max(1, len(text) // 4)  # what FakeEmbeddingsAPI bills


async def test_a_text_repeated_in_a_document_is_paid_and_reported_once(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    key = "incoming/same.json"
    text = "The same answer to the same question."
    await storage.put(s3_bucket, key, json.dumps([{"text": text}] * 100).encode())
    runtime = make_runtime(source_bucket=s3_bucket)

    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=[key]), context()
    )

    assert api.requests == 1
    assert reply["documents"][0]["embedded"] == 1
    usage = (await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json"))["usage"]
    assert usage == {
        "tokens": 100 * tokens_of(text),
        "billed_tokens": tokens_of(text),
        "api_requests": 1,
        "reused_chunks": 99,
        "ocr_pages": 0,
        "ocr_requests": 0,
    }


async def test_a_text_shared_by_two_messages_of_a_batch_is_paid_once(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    text = "A new text that two messages carry."
    bodies = [json.dumps({"id": name, "text": text}) for name in ("first", "second")]

    reply = await dispatch(runtime, queue_event(*bodies), context())

    assert [item["outcome"] for item in reply["documents"]] == ["embedded", "embedded"]
    assert api.requests == 1
    usages = [
        (await read_json(storage, s3_bucket, f"embeddings/_inline/{name}.manifest.json"))["usage"]
        for name in ("first", "second")
    ]
    assert sorted(usage["api_requests"] for usage in usages) == [0, 1]
    assert sum(usage["billed_tokens"] for usage in usages) == tokens_of(text)


async def test_a_document_finished_from_its_checkpoint_reports_its_whole_cost(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    key = "incoming/long.md"
    paragraphs = [f"Paragraph {n} tells its own story about item number {n}." * 6 for n in range(12)]
    await storage.put(s3_bucket, key, "\n\n".join(paragraphs).encode())
    runtime = make_runtime(source_bucket=s3_bucket, embeddings_max_attempts=1)
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
    api.fail = lambda text: httpx.Response(503, json={"error": "busy"}) if "item number 7." in text else None

    with pytest.raises(EmbeddingsError):
        await dispatch(runtime, event, context())
    first_run = set(api.texts)
    assert first_run
    assert await object_keys(storage, s3_bucket, f"embeddings/_checkpoints/{key}/")

    api.fail = lambda _text: None
    reply = await dispatch(runtime, event, context())

    assert reply["documents"][0]["outcome"] == "embedded"
    assert max(api.texts.values()) == 1  # nothing paid twice
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    usage: dict[str, Any] = manifest["usage"]
    assert usage["api_requests"] == len(api.texts) == manifest["chunks"]
    assert usage["billed_tokens"] == sum(tokens_of(text) for text in api.texts)
    assert usage["reused_chunks"] == 0  # the first invocation's vectors were paid for this version


async def test_an_inline_text_that_ran_out_of_time_is_finished_by_reconcile(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    text = "\n\n".join(f"Sentence group {n} of a long inline submission." * 8 for n in range(30))
    slow = make_runtime(source_bucket=s3_bucket, embeddings_rps=20, deadline_margin_s=0)
    submit = request_event("POST", "/v1/documents", {"id": "faq-long", "text": text}, key=None)

    status, body = await call(slow, submit, context(timeout_s=0.5))

    assert (status, body["status"]) == (202, "in_progress")
    assert await storage.head(s3_bucket, "embeddings/_checkpoints/_inline/faq-long/submission.json")
    paid_before = api.embedded

    fast = make_runtime(source_bucket=s3_bucket)
    reply = await dispatch(fast, timer_event(None), context())

    assert reply["found"]["inline_unfinished"] == 1
    assert reply["outcomes"] == {"embedded": 1}
    assert max(api.texts.values()) == 1  # resumed from the checkpoint: nothing paid twice
    assert api.embedded > paid_before
    assert await object_keys(storage, s3_bucket, "embeddings/_checkpoints/") == []
    status, body = await call(fast, request_event("GET", "/v1/documents/_inline/faq-long", key=None))
    assert (status, body["status"]) == (200, "embedded")


async def test_an_inline_text_the_api_refuses_is_parked_and_not_retried_by_reconcile(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    api.fail = lambda text: (
        httpx.Response(400, json={"error": {"message": "text contains forbidden content"}})
        if "forbidden" in text
        else None
    )
    body = json.dumps({"id": "bad", "text": "Some forbidden words."})

    reply = await dispatch(runtime, queue_event(body), context())

    assert [item["outcome"] for item in reply["documents"]] == ["parked"]
    assert await storage.head(s3_bucket, "embeddings/_checkpoints/_inline/bad/submission.json") is None
    requests = api.requests
    tick = await dispatch(runtime, timer_event(None), context())
    assert tick["found"]["inline_unfinished"] == 0
    assert api.requests == requests
