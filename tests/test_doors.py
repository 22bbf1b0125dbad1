"""Functional: the HTTP and queue doors refuse what they must, in words that name the problem.

Bad input of every kind is an OpenAI-shaped 4xx (upstream garbage a 502, a bug a 500), never an
exception; work messages are read as the kind their fields say; references reach only sources;
`dimensions` is honoured or refused, never ignored; `usage` is what was paid.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from devstack.events import queue_event
from embedding_pipeline.bucket_policy import WorkRefused, reference_bucket
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.messages import ObjectReference
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator, vector_for
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, object_keys, read_json, request_event

CONFIGURED_MODEL = "emb://b1gtest/text-search-doc/latest"
NOT_AN_INTEGER = "dimensions: Input should be a valid integer"


class RecordingAPI:
    """The fake API, keeping every request body; vectors as long as `dimensions` asks if `honour`."""

    def __init__(self, api: FakeEmbeddingsAPI, *, honour: bool = False) -> None:
        self.api = api
        self.honour = honour
        self.bodies: list[dict[str, Any]] = []

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if self.honour and "dimensions" in body:
            vector = vector_for(body["input"], body["dimensions"])
            return httpx.Response(200, json={"data": [{"embedding": vector}], "usage": {"total_tokens": 1}})
        return self.api(request)


@pytest.fixture
def runtime(make_runtime: RuntimeFactory, s3_bucket: str) -> Runtime:
    return make_runtime(source_bucket=s3_bucket)


def embeddings(body: Any) -> dict[str, Any]:
    return request_event("POST", "/v1/embeddings", body, key=None)


def submission(body: Any) -> dict[str, Any]:
    return request_event("POST", "/v1/documents", body, key=None)


# C. Every bad input is a 4xx that names the problem.


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, 400, "invalid_json", "request body is nested too deeply"),
        ('{"input": ["ok", "\\ud800"]}', 400, "invalid_request", "input[1] is not valid Unicode"),
        ('{"input": "\\udfff tail"}', 400, "invalid_request", "input is not valid Unicode"),
        ('{"input": "x", "model": "\\ud800"}', 400, "invalid_request", "model: not valid Unicode"),
        ('{"input": []}', 400, "invalid_request", "input must not be empty"),
        ('{"input": [[1, 2]]}', 400, "token_ids_not_supported", "input[0] is a list of token ids"),
        ('{"input": [1, 2]}', 400, "token_ids_not_supported", "input is a list of token ids"),
        ('{"input": ["a", [1]]}', 400, "token_ids_not_supported", "input[1] is a list of token ids"),
        ('{"input": ["a", []]}', 400, "invalid_request", "input[1] must be a string"),
        ('{"input": [true]}', 400, "invalid_request", "input[0] must be a string"),
        ('{"input": 5}', 400, "invalid_request", "input must be a string or a list of strings"),
        ('{"input": ["a", " "]}', 400, "invalid_request", "input[1] is empty"),
        ('{"input": "x", "dimensions": 0}', 400, "invalid_request", "dimensions: Input should be greater"),
        ('{"input": "x", "dimensions": true}', 400, "invalid_request", "dimensions: Input should be a valid"),
        (
            '{"input": "x", "dimensions": 128.0}',
            400,
            "invalid_request",
            "dimensions: Input should be a valid",
        ),
        ('{"input": "x", "dimensions": "64"}', 400, "invalid_request", "dimensions: Input should be a valid"),
        ("9" * 5000, 400, "invalid_json", "request body is not valid JSON"),
    ],
)
async def test_bad_embeddings_requests_are_4xx_naming_the_problem(
    runtime: Runtime, api: FakeEmbeddingsAPI, body: str, status: int, code: str, message: str
) -> None:
    got_status, reply = await call(runtime, embeddings(body))
    assert (got_status, reply["error"]["code"]) == (status, code)
    assert reply["error"]["message"].startswith(message), reply["error"]["message"]
    assert reply["error"]["type"] == "invalid_request_error"
    assert api.requests == 0


async def test_lone_surrogates_outside_the_json_are_4xx_too(
    runtime: Runtime, make_runtime: RuntimeFactory
) -> None:
    raw_body = embeddings("ignored")
    # The event's own JSON held the escape: the body is a str that has no UTF-8 form.
    raw_body["body"] = '{"input": "\ud800"}'
    assert (await call(runtime, raw_body))[1]["error"]["code"] == "invalid_body"

    odd_key = request_event("POST", "/v1/embeddings", {"input": "x"}, key="k\udc80ey")
    status, reply = await call(make_runtime(http_api_keys="key-1"), odd_key)
    assert (status, reply["error"]["code"]) == (403, "invalid_api_key")

    odd_path = request_event("POST", "/v1/\ud800", {"input": "x"}, key=None)
    status, reply = await call(runtime, odd_path)
    assert (status, reply["error"]["code"]) == (404, "unknown_route")
    assert "\\ud800" in json.dumps(reply)  # echoed as the escape it came as


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": "a", "text": ""}, "text: text is empty"),
        ({"id": "../x", "text": "hi"}, "id: object key is absolute or contains a '.' or '..' segment"),
        ({"id": "a"}, "text: Field required"),
        ({"id": "a", "text": "t", "metadata": {"score": float("nan")}}, "metadata: 'score' is nan"),
        ('{"id": "a", "text": "t", "metadata": {"x": "\\ud800"}}', "metadata: not valid Unicode"),
        ({"key": ""}, "key: String should have at least 1 character"),
        ({"key": "incoming/a.md", "id": "a"}, "id: Extra inputs are not permitted"),
        ({"foo": 1}, 'a work message should be an object with "key"'),
        ([1, 2], 'a work message should be an object with "key"'),
    ],
)
async def test_submissions_are_read_as_the_kind_their_fields_say(
    runtime: Runtime, api: FakeEmbeddingsAPI, body: Any, message: str
) -> None:
    status, reply = await call(runtime, submission(body))
    assert (status, reply["error"]["code"]) == (400, "invalid_request")
    assert reply["error"]["message"] == message or reply["error"]["message"].startswith(message)
    assert api.requests == 0


async def test_an_unexpected_failure_is_a_generic_500_with_the_traceback_logged(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_args: Any) -> Any:
        raise RuntimeError("boom in a place nobody expected")

    monkeypatch.setattr("handlers.http.route", broken)
    with capture_logs() as logs:
        status, reply = await call(runtime, embeddings({"input": "x"}))
    assert (status, reply["error"]["code"], reply["error"]["type"]) == (500, "internal_error", "api_error")
    assert "boom" not in reply["error"]["message"]
    (line,) = [line for line in logs if line["event"] == "http_unexpected_error"]
    assert line["log_level"] == "error"
    assert "RuntimeError: boom in a place nobody expected" in line["traceback"]
    assert "Traceback (most recent call last)" in line["traceback"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (httpx.Response(200, content=b'{"data": [{"embedding": [NaN]}]}'), "upstream_error"),
        (httpx.Response(200, content=b'{"data": [{"embedding": [true]}]}'), "upstream_error"),
        (httpx.Response(200, content=b"<html>gateway</html>"), "upstream_error"),
        (httpx.Response(400, json={"error": {"message": "invalid model_uri"}}), "upstream_model"),
    ],
)
async def test_upstream_garbage_is_a_502(
    runtime: Runtime, api: FakeEmbeddingsAPI, answer: httpx.Response, code: str
) -> None:
    api.fail = lambda _text: answer
    status, reply = await call(runtime, embeddings({"input": "x"}))
    assert (status, reply["error"]["code"], reply["error"]["type"]) == (502, code, "api_error")


# C. References reach only sources.


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("private/salaries.txt", "is not under SOURCE_PREFIX ('incoming/')"),
        ("embeddings/incoming/a.md.jsonl", "is under OUTPUT_PREFIX ('embeddings/')"),
    ],
)
async def test_references_outside_the_sources_are_refused_at_both_doors(
    runtime: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    key: str,
    reason: str,
) -> None:
    await storage.put(s3_bucket, key, b"Salaries: confidential.")

    status, reply = await call(runtime, submission({"key": key}))
    assert (status, reply["error"]["code"], reply["error"]["type"]) == (
        403,
        "key_not_allowed",
        "permission_error",
    )
    assert reason in reply["error"]["message"]

    reply = await dispatch(runtime, queue_event(json.dumps({"key": key})), context())
    assert reply == {"documents": [], "parked": 1}
    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-0.json")
    assert reason in parked["reason"]
    assert api.requests == 0
    assert sorted(await object_keys(storage, s3_bucket)) == sorted(
        {key, "embeddings/_errors/_queue/message-0.json"}
    )


def test_the_pipelines_own_continuations_stay_valid(runtime: Runtime, s3_bucket: str) -> None:
    continuation = ObjectReference.continuation_of(s3_bucket, "incoming/big report.md", 3)
    assert reference_bucket(runtime.settings, continuation.key, continuation.bucket) == s3_bucket
    elsewhere = ObjectReference.continuation_of(s3_bucket, "other/x.md", 0)
    with pytest.raises(WorkRefused) as refused:
        reference_bucket(runtime.settings, elsewhere.key, elsewhere.bucket)
    assert refused.value.code == "key_not_allowed"


# B. `dimensions` is honoured or refused, never ignored.


async def test_the_configured_dimensions_need_no_parameter(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI
) -> None:
    recording = RecordingAPI(api)
    runtime = make_runtime(transports=Transports(embeddings=recording.transport))
    status, reply = await call(runtime, embeddings({"input": "x", "dimensions": 256}))
    assert status == 200
    assert len(reply["data"][0]["embedding"]) == 256
    assert "dimensions" not in recording.bodies[0]


async def test_other_dimensions_are_passed_through_and_honoured(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI
) -> None:
    recording = RecordingAPI(api, honour=True)
    runtime = make_runtime(transports=Transports(embeddings=recording.transport))
    status, reply = await call(runtime, embeddings({"input": ["x", "y"], "dimensions": 64}))
    assert status == 200
    assert [len(item["embedding"]) for item in reply["data"]] == [64, 64]
    assert [body["dimensions"] for body in recording.bodies] == [64, 64]


async def test_a_model_that_ignores_dimensions_is_a_400(runtime: Runtime) -> None:
    # The fake API, like the local e5 model, answers every request with its own length.
    status, reply = await call(runtime, embeddings({"input": "x", "dimensions": 64}))
    assert (status, reply["error"]["code"]) == (400, "dimensions_not_supported")
    assert f"model {CONFIGURED_MODEL} does not support dimensions=64" in reply["error"]["message"]


@pytest.fixture(scope="module")
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator(EmulatorConfig(rps=1000)) as running:
        yield running


async def test_a_model_that_refuses_dimensions_is_a_400_naming_it(
    make_runtime: RuntimeFactory, emulator: YandexEmulator
) -> None:
    runtime = make_runtime(transports=Transports(), embeddings_url=emulator.url)
    status, reply = await call(runtime, embeddings({"input": "x", "dimensions": 128, "model": "query"}))
    assert (status, reply["error"]["code"]) == (400, "dimensions_not_supported")
    message = reply["error"]["message"]
    assert "emb://b1gtest/text-search-query/latest does not support dimensions=128" in message


async def test_an_unknown_model_named_by_the_caller_is_a_404(
    make_runtime: RuntimeFactory, emulator: YandexEmulator
) -> None:
    runtime = make_runtime(transports=Transports(), embeddings_url=emulator.url)
    status, reply = await call(runtime, embeddings({"input": "x", "model": "text-search-docs"}))
    assert (status, reply["error"]["code"]) == (404, "model_not_found")
    assert "text-search-docs" in reply["error"]["message"]

    # The function's own model refused is its operator's problem: a 502, not the caller's 404.
    misconfigured = make_runtime(
        transports=Transports(), embeddings_url=emulator.url, embeddings_model="text-search-docs"
    )
    status, reply = await call(misconfigured, embeddings({"input": "x"}))
    assert (status, reply["error"]["code"]) == (502, "upstream_model")


# D. `usage` is what was paid.


async def test_usage_counts_each_distinct_text_once(runtime: Runtime, api: FakeEmbeddingsAPI) -> None:
    texts = ["aaaa bbbb", "cccc dddd eeee ffff", "aaaa bbbb", "aaaa bbbb"]
    with capture_logs() as logs:
        status, reply = await call(runtime, embeddings({"input": texts}))
    assert status == 200
    paid = {"aaaa bbbb": 9 // 4, "cccc dddd eeee ffff": 19 // 4}  # the fake bills len // 4 tokens
    assert reply["usage"] == {"prompt_tokens": sum(paid.values()), "total_tokens": sum(paid.values())}
    assert dict(api.texts) == dict.fromkeys(paid, 1)
    (summary,) = [line for line in logs if line["event"] == "invocation_done"]
    assert (summary["api_requests"], summary["tokens"]) == (2, reply["usage"]["total_tokens"])
