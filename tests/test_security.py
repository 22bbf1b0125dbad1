"""Security: API keys on every route, unsafe object keys, foreign buckets, and the suite's secret scan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.events import queue_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import OutOfTime
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.runtime import Transports
from handlers import dispatch
from handlers.http.router import ROUTES
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event

QUEUE_URL = "https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs"
UNSAFE_KEYS = {
    "parent segment": "incoming/../../etc/passwd",
    "absolute path": "/etc/passwd",
    "NUL byte": "incoming/a\x00b.md",
    "line break": "incoming/forged\nlog line.md",
    "escape sequence": "incoming/\x1b[2Jclear.md",
    "over 1024 bytes": "incoming/" + "я" * 600,
}


def protected_routes() -> list[tuple[str, str]]:
    routes = [(method, path) for path, methods in ROUTES.items() for method in methods if path != "/healthz"]
    return [*routes, ("GET", "/v1/documents/incoming/a.md")]


def test_health_is_the_only_route_without_a_key() -> None:
    unprotected = [
        path for path, methods in ROUTES.items() for _, needs_key in methods.values() if not needs_key
    ]
    assert unprotected == ["/healthz"]


@pytest.mark.parametrize(("method", "path"), protected_routes())
@pytest.mark.parametrize(
    ("key", "status", "code"), [(None, 401, "missing_api_key"), ("wrong", 403, "invalid_api_key")]
)
async def test_every_route_but_health_refuses_a_missing_or_wrong_key(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    method: str,
    path: str,
    key: str | None,
    status: int,
    code: str,
) -> None:
    await storage.put(s3_bucket, "incoming/a.md", b"# A\n\nText.")
    runtime = make_runtime(http_api_keys="right-key", source_bucket=s3_bucket)
    body = {"input": "text"} if path == "/v1/embeddings" else {"key": "incoming/a.md"}
    reply_status, reply = await call(
        runtime, request_event(method, path, body if method == "POST" else None, key=key)
    )
    assert (reply_status, reply["error"]["code"]) == (status, code)
    assert api.requests == 0
    assert await object_keys(storage, s3_bucket) == ["incoming/a.md"]


@pytest.mark.parametrize("key", UNSAFE_KEYS.values(), ids=UNSAFE_KEYS.keys())
async def test_unsafe_keys_are_refused_at_every_entry_without_writing(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI, key: str
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
    upload = await dispatch(runtime, event, context())
    outside_source_prefix = not key.startswith("incoming/")  # the trigger ignores it before any check
    expected = {"documents": [], "ignored": 1} if outside_source_prefix else None
    assert upload == expected or [document["outcome"] for document in upload["documents"]] == ["refused"]
    # Nothing is derived from the key; an event the trigger took leaves only the refusal record.
    refusals = [] if outside_source_prefix else [OutputLayout(s3_bucket, "embeddings/").refusal(key)]
    assert await object_keys(storage, s3_bucket) == refusals
    if refusals:
        record = await read_json(storage, s3_bucket, refusals[0])
        assert record["error"] == "unsafe_key"
        assert record["reason"]

    status, reply = await call(runtime, request_event("POST", "/v1/documents", {"key": key}, key=None))
    assert (status, reply["error"]["type"]) == (400, "invalid_request_error")
    assert await object_keys(storage, s3_bucket) == refusals

    reply = await dispatch(runtime, queue_event(json.dumps({"key": key})), context())
    assert reply == {"documents": [], "parked": 1}
    assert await object_keys(storage, s3_bucket) == sorted(
        [*refusals, "embeddings/_errors/_queue/message-0.json"]
    )
    assert api.requests == 0


@pytest.fixture
async def foreign_bucket(storage: ObjectStorage, s3_bucket: str) -> str:
    """A bucket the service account could reach but the operator never configured, holding a document."""
    bucket = "foreign-" + s3_bucket[-12:]
    await storage.create_bucket(bucket)
    await storage.put(bucket, "incoming/a.md", b"# Foreign\n\nNot ours to embed.")
    return bucket


async def test_messages_and_submissions_cannot_name_an_unconfigured_bucket(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    foreign_bucket: str,
    api: FakeEmbeddingsAPI,
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    reference = {"key": "incoming/a.md", "bucket": foreign_bucket}

    status, reply = await call(runtime, request_event("POST", "/v1/documents", reference, key=None))
    assert (status, reply["error"]["code"]) == (403, "bucket_not_allowed")

    reply = await dispatch(runtime, queue_event(json.dumps(reference)), context())
    assert reply == {"documents": [], "parked": 1}
    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-0.json")
    assert "EXTRA_SOURCE_BUCKETS" in parked["reason"]
    assert await object_keys(storage, foreign_bucket) == ["incoming/a.md"]
    assert api.requests == 0


async def test_extra_source_buckets_may_be_named(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, foreign_bucket: str
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket, extra_source_buckets=f" other, {foreign_bucket}")
    message = json.dumps({"key": "incoming/a.md", "bucket": foreign_bucket})
    reply = await dispatch(runtime, queue_event(message), context())
    assert [document["outcome"] for document in reply["documents"]] == ["embedded"]
    assert "embeddings/incoming/a.md.manifest.json" in await object_keys(storage, foreign_bucket)


async def test_a_large_document_in_an_unconfigured_bucket_is_not_handed_to_the_queue(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    foreign_bucket: str,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
) -> None:
    """The queue would park a continuation naming this bucket; the trigger's retry resumes instead."""
    text = "\n\n".join(f"Paragraph {number}: " + "words about the harvest " * 20 for number in range(40))
    await storage.put(foreign_bucket, "incoming/long.md", text.encode())
    queue = FakeMessageQueue()
    runtime = make_runtime(
        transports=Transports(embeddings=api.transport, queue=queue.transport),
        source_bucket=s3_bucket,
        queue_url=QUEUE_URL,
        embeddings_rps=20,
        deadline_margin_s=0,
    )
    event = load_event("storage_object_create", bucket=foreign_bucket, keys=["incoming/long.md"])
    with pytest.raises(OutOfTime):
        await dispatch(runtime, event, context(timeout_s=0.5))
    assert queue.bodies == []
    assert 0 < api.requests < 40


def test_a_secret_in_captured_output_fails_the_test(pytester: pytest.Pytester) -> None:
    """The suite-wide scan (tests/secret_scan.py) is live: it fails a test that prints a secret."""
    pytester.makepyfile(
        """
        import logging

        def test_prints_a_token():
            print('{"msg": "calling", "authorization": "Bearer t1.context-token-secret-value"}')

        def test_logs_an_api_key():
            logging.getLogger("x").warning("X-Api-Key was test-key-2")

        def test_clean():
            print('{"msg": "calling", "authorization": "***"}')
        """
    )
    # A separate process whose output is kept, not echoed: the leaks it provokes stay out of this
    # test's own captured output (which the scan reads too).
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = [sys.executable, "-m", "pytest", "-p", "tests.secret_scan", "-p", "no:cacheprovider", "-q"]
    result = subprocess.run(command, cwd=pytester.path, env=env, capture_output=True, text=True, check=False)
    assert "2 failed, 1 passed" in result.stdout
    lines = result.stdout.splitlines()
    assert "secrets reached the captured output during call: IAM token in the invocation context" in lines
    assert "secrets reached the captured output during call: HTTP API key 2" in lines
