"""Functional: the HTTP API through the router: direct calls, API Gateway 0.1 and 1.0, keys, errors."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Runtime, Transports
from handlers.http.documents import QUEUED_FOR_S
from testkit.yandex_emulator import vector_for
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.served import served
from tests.support import RuntimeFactory, call, load_event, request_event

KEYS = "test-key-1,test-key-2"


@pytest.fixture
def http_runtime(make_runtime: RuntimeFactory, s3_bucket: str) -> Runtime:
    return make_runtime(http_api_keys=KEYS, source_bucket=s3_bucket, http_max_inputs=8)


@pytest.mark.parametrize("event_name", ["http_direct", "http_gateway_v0", "http_gateway_v1"])
async def test_embeddings_through_every_payload_shape(
    http_runtime: Runtime, api: FakeEmbeddingsAPI, event_name: str
) -> None:
    status, body = await call(http_runtime, load_event(event_name))
    assert status == 200
    assert body["object"] == "list"
    inputs = {"http_direct": ["привет"], "http_gateway_v0": ["one", "two"], "http_gateway_v1": ["hello"]}[
        event_name
    ]
    assert [item["index"] for item in body["data"]] == list(range(len(inputs)))
    assert [item["embedding"] for item in body["data"]] == [
        vector_for(text, api.dimensions) for text in inputs
    ]
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] > 0
    expected_model = "query" if event_name == "http_gateway_v0" else "doc"
    assert body["model"] == f"emb://b1gtest/text-search-{expected_model}/latest"


async def test_duplicate_inputs_cost_one_call(http_runtime: Runtime, api: FakeEmbeddingsAPI) -> None:
    status, body = await call(
        http_runtime, request_event("POST", "/v1/embeddings", {"input": ["a", "b", "a"]})
    )
    assert status == 200
    assert len(body["data"]) == 3
    assert api.requests == 2


async def test_base64_encoding_is_little_endian_float32(
    http_runtime: Runtime, api: FakeEmbeddingsAPI
) -> None:
    status, body = await call(
        http_runtime, request_event("POST", "/v1/embeddings", {"input": "x", "encoding_format": "base64"})
    )
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(vector_for("x", api.dimensions), abs=1e-6)


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (request_event("POST", "/v1/embeddings", {"input": "x"}, key=None), 401, "missing_api_key"),
        (request_event("POST", "/v1/embeddings", {"input": "x"}, key="wrong"), 403, "invalid_api_key"),
        (request_event("GET", "/v1/documents/incoming/a.md", key=None), 401, "missing_api_key"),
        (request_event("POST", "/v1/documents", {"key": "a"}, key="nope"), 403, "invalid_api_key"),
        (request_event("POST", "/v1/embeddings", "{not json"), 400, "invalid_json"),
        (request_event("POST", "/v1/embeddings", {"input": []}), 400, "invalid_request"),
        (request_event("POST", "/v1/embeddings", {"input": ["ok", "  "]}), 400, "invalid_request"),
        (request_event("POST", "/v1/embeddings", {"input": [1, 2]}), 400, "token_ids_not_supported"),
        (request_event("POST", "/v1/embeddings", {"input": ["a", 2]}), 400, "invalid_request"),
        (
            request_event("POST", "/v1/embeddings", {"input": "x", "encoding_format": "int8"}),
            400,
            "invalid_request",
        ),
        (request_event("POST", "/v1/embeddings", {"input": ["t"] * 9}), 413, "too_many_inputs"),
        (request_event("POST", "/v1/nothing", {}), 404, "unknown_route"),
        (request_event("DELETE", "/v1/embeddings"), 405, "method_not_allowed"),
        (request_event("GET", "/v1/embeddings"), 405, "method_not_allowed"),
    ],
)
async def test_errors_are_json_in_openai_shape(
    http_runtime: Runtime, event: dict[str, Any], status: int, code: str
) -> None:
    got_status, body = await call(http_runtime, event)
    assert got_status == status
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["type"]


async def test_oversized_body_is_413(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(http_max_body_bytes=100)
    status, body = await call(runtime, request_event("POST", "/v1/embeddings", {"input": "x" * 200}))
    assert (status, body["error"]["code"]) == (413, "body_too_large")


async def test_bad_base64_body_is_400(http_runtime: Runtime) -> None:
    event = request_event("POST", "/v1/embeddings", "%%%not-base64")
    event["isBase64Encoded"] = True
    status, body = await call(http_runtime, event)
    assert (status, body["error"]["code"]) == (400, "invalid_body")


async def test_healthz_needs_no_key_and_no_credentials(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(
        transports=Transports(),  # nothing faked
        http_api_keys=KEYS,
        yc_api_key=None,
        aws_access_key_id=None,
        aws_secret_access_key=None,
        yc_metadata_url="http://127.0.0.1:9/none",
    )
    status, body = await call(runtime, request_event("GET", "/healthz", key=None, shape="direct"))
    assert (status, body["status"]) == (200, "ok")


async def test_direct_call_default_routes(http_runtime: Runtime) -> None:
    get = request_event("GET", "", key=None, shape="direct")  # no ?path=
    assert (await call(http_runtime, get))[0] == 200
    post = request_event("POST", "", {"input": "x"}, shape="direct")
    status, body = await call(http_runtime, post)
    assert (status, body["object"]) == (200, "list")


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [
        (httpx.Response(429, json={"message": "rate"}), 429, "upstream_rate_limited"),
        (httpx.Response(503), 502, "upstream_error"),
        (httpx.Response(401, json={"message": "expired"}), 502, "upstream_auth"),
        (
            httpx.Response(
                400, json={"error": {"message": "number of input tokens must be no more than 2048"}}
            ),
            400,
            "input_too_long",
        ),
    ],
)
async def test_upstream_failures_map_to_statuses(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, failure: httpx.Response, status: int, code: str
) -> None:
    api.fail = lambda _text: failure
    runtime = make_runtime(embeddings_max_attempts=1)
    got_status, body = await call(runtime, request_event("POST", "/v1/embeddings", {"input": "x"}, key=None))
    assert (got_status, body["error"]["code"]) == (status, code)


async def test_storage_outage_is_503(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(s3_endpoint="http://127.0.0.1:9", source_bucket="b")
    status, body = await call(runtime, request_event("GET", "/v1/documents/incoming/a.md", key=None))
    assert (status, body["error"]["code"]) == (503, "storage_unavailable")


async def test_submit_inline_then_read_its_status(
    http_runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    status, body = await call(
        http_runtime,
        request_event("POST", "/v1/documents", {"id": "note-1", "text": "Кофемашина сломалась."}),
    )
    assert status == 202
    assert body["status"] == "embedded"
    assert body["document"] == "_inline/note-1"
    assert body["manifest"] == f"s3://{s3_bucket}/embeddings/_inline/note-1.manifest.json"

    status, body = await call(http_runtime, request_event("GET", "/v1/documents/_inline/note-1"))
    assert (status, body["status"], body["chunks"]) == (200, "embedded", 1)


async def test_submit_object_key_and_lookups(
    http_runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, "incoming/Отчёт 1.md", "# Итоги\n\nВыручка выросла.".encode())
    await storage.put(s3_bucket, "incoming/binary.txt", b"\x89PNG\r\n\x1a\n" + bytes(200))

    status, body = await call(
        http_runtime, request_event("POST", "/v1/documents", {"key": "incoming/Отчёт 1.md"})
    )
    assert (status, body["status"]) == (202, "embedded")
    status, body = await call(
        http_runtime, request_event("GET", "/v1/documents/incoming/%D0%9E%D1%82%D1%87%D1%91%D1%82%201.md")
    )
    assert (status, body["status"], body["source"]["key"]) == (200, "embedded", "incoming/Отчёт 1.md")

    status, body = await call(
        http_runtime, request_event("POST", "/v1/documents", {"key": "incoming/binary.txt"})
    )
    assert (status, body["error"]["code"]) == (422, "document_parked")
    status, body = await call(http_runtime, request_event("GET", "/v1/documents/incoming/binary.txt"))
    assert (status, body["status"], body["error"]) == (200, "parked", "unsupported_document")

    status, body = await call(
        http_runtime, request_event("POST", "/v1/documents", {"key": "incoming/absent.md"})
    )
    assert status == 404
    status, body = await call(http_runtime, request_event("GET", "/v1/documents/incoming/absent.md"))
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await call(http_runtime, request_event("POST", "/v1/documents", {"key": "../etc/passwd"}))
    assert status == 400

    # Output areas are no documents: a parked message's record (its raw body) is not served as one.
    for inside in ("_errors/_queue/message-0", "_errors/incoming/binary.txt", "_checkpoints/incoming/a.md"):
        status, body = await call(http_runtime, request_event("GET", f"/v1/documents/{inside}"))
        assert (status, body["error"]["code"]) == (404, "unknown_route"), inside


async def test_submit_hands_over_to_the_queue_when_configured(
    make_runtime: RuntimeFactory, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    queue = FakeMessageQueue()
    runtime = make_runtime(
        transports=Transports(embeddings=api.transport, queue=queue.transport),
        source_bucket=s3_bucket,
        queue_url="https://message-queue.api.cloud.yandex.net/b/q/jobs",
    )
    status, body = await call(
        runtime, request_event("POST", "/v1/documents", {"key": "incoming/a.md"}, key=None)
    )
    assert (status, body["status"]) == (202, "queued")
    assert json.loads(queue.bodies[0]) == {"key": "incoming/a.md"}
    assert api.requests == 0

    # A client that polls its status_url at once hears "queued", not "not found".
    assert body["status_url"].startswith("/v1/documents/incoming/a.md?submitted=")
    status, polled = await call(runtime, request_event("GET", body["status_url"], key=None))
    assert (status, polled["status"], polled["document"]) == (200, "queued", "incoming/a.md")


async def test_a_status_url_says_queued_only_while_a_queued_message_can_still_be_delivered(
    http_runtime: Runtime,
) -> None:
    now = int(time.time())
    for submitted, expected in [(now - 60, 200), (now - QUEUED_FOR_S - 5, 404), (now + 3600, 404)]:
        url = f"/v1/documents/incoming/never.md?submitted={submitted}"
        status, body = await call(http_runtime, request_event("GET", url))
        assert status == expected, submitted
    status, body = await call(
        http_runtime, request_event("GET", "/v1/documents/incoming/never.md?submitted=x")
    )
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_once_outputs_exist_the_status_url_reports_them(http_runtime: Runtime) -> None:
    status, body = await call(
        http_runtime, request_event("POST", "/v1/documents", {"id": "n2", "text": "Note."})
    )
    assert status == 202
    status, polled = await call(http_runtime, request_event("GET", body["status_url"]))
    assert (status, polled["status"]) == (200, "embedded")


@pytest.fixture
async def gateway(make_runtime: RuntimeFactory) -> AsyncIterator[str]:
    """The function served over real HTTP on loopback (tests/served.py)."""
    async with served(make_runtime(http_api_keys=KEYS)) as url:
        yield url


async def test_official_openai_client_round_trip(gateway: str, api: FakeEmbeddingsAPI) -> None:
    headers = {"X-Api-Key": "test-key-2"}
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key="ignored", default_headers=headers) as client:
        result = await asyncio.to_thread(
            client.embeddings.create, model="text-search-query", input=["привет", "hello"]
        )
        single = await asyncio.to_thread(
            client.embeddings.create, model="doc", input="hello", encoding_format="float"
        )
    assert [item.index for item in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(vector_for("привет", api.dimensions), abs=1e-6)
    assert result.model == "emb://b1gtest/text-search-query/latest"
    assert result.usage.total_tokens > 0
    assert single.data[0].embedding == pytest.approx(vector_for("hello", api.dimensions), abs=1e-9)


async def test_openai_client_sees_auth_errors(gateway: str) -> None:
    headers = {"X-Api-Key": "bad"}
    with (
        openai.OpenAI(
            base_url=f"{gateway}/v1", api_key="x", default_headers=headers, max_retries=0
        ) as client,
        pytest.raises(openai.PermissionDeniedError),
    ):
        await asyncio.to_thread(client.embeddings.create, model="doc", input="hello")


async def test_a_document_from_another_allowed_bucket_reports_its_status(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """Outputs lie beside their source: a submission naming one of EXTRA_SOURCE_BUCKETS is embedded
    there, and its status is found there, not in SOURCE_BUCKET (where nothing of it exists)."""
    empty, extra = f"empty-{s3_bucket[-12:]}", f"extra-{s3_bucket[-12:]}"
    for bucket in (empty, extra):
        await storage.create_bucket(bucket)
    await storage.put(extra, "incoming/other.md", b"# Other\n\nA document kept in another bucket.")
    runtime = make_runtime(source_bucket=s3_bucket, extra_source_buckets=f"{empty}, {extra}")
    reference = {"key": "incoming/other.md", "bucket": extra}
    status, body = await call(runtime, request_event("POST", "/v1/documents", reference, key=None))
    assert (status, body["status"]) == (202, "embedded")
    assert body["manifest"] == f"s3://{extra}/embeddings/incoming/other.md.manifest.json"
    assert body["status_url"].startswith(f"/v1/documents/incoming/other.md?bucket={extra}&submitted=")

    status, body = await call(runtime, request_event("GET", "/v1/documents/incoming/other.md", key=None))
    assert (status, body["status"], body["bucket"]) == (200, "embedded", extra)
    assert body["records"] == f"s3://{extra}/embeddings/incoming/other.md.jsonl"

    def named(bucket: str) -> dict[str, Any]:
        return request_event("GET", f"/v1/documents/incoming/other.md?bucket={bucket}", key=None)

    status, body = await call(runtime, named(extra))
    assert (status, body["status"], body["bucket"]) == (200, "embedded", extra)
    status, body = await call(runtime, named(s3_bucket))
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await call(runtime, named("someone-elses-bucket"))
    assert (status, body["error"]["code"]) == (403, "bucket_not_allowed")
    assert await storage.head(s3_bucket, "embeddings/incoming/other.md.manifest.json") is None


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_submission_with_a_non_finite_metadata_number_is_400_and_writes_nothing(
    http_runtime: Runtime, storage: ObjectStorage, s3_bucket: str, literal: str
) -> None:
    # Python's parser takes these literals; records, manifests and jsonb cannot hold them.
    body = '{"id": "n1", "text": "A short note.", "metadata": {"score": ' + literal + "}}"
    status, reply = await call(http_runtime, request_event("POST", "/v1/documents", body))

    assert status == 400
    assert reply["error"]["message"].startswith("metadata: 'score' is ")
    assert "only finite numbers are allowed" in reply["error"]["message"]
    assert not [key async for key in storage.list_objects(s3_bucket, "")]
