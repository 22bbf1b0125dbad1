"""Functional: POST /v1/embeddings takes OpenAI's batches (up to 2,048 inputs), paced inside, and
refuses, before paying for a text, a batch whose reply or time the invocation cannot hold, naming
the client setting that sends fewer (handlers/http/batch_limits.py)."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from embedding_pipeline.runtime import Transports
from handlers import dispatch
from handlers.http.batch_limits import reply_bytes_per_input
from handlers.http.replies import REPLY_LIMIT_BYTES
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, request_event


def batch(texts: list[str], **fields: object) -> dict[str, object]:
    """A batch as the openai client sends it: base64 unless told otherwise."""
    body = {"input": texts, "model": "doc", "encoding_format": "base64", **fields}
    return request_event("POST", "/v1/embeddings", body)


def advised(message: str) -> int:
    """The batch size a refusal advises, checked to be said the same way for both libraries."""
    sizes = {int(size) for size in re.findall(r"(?:chunk_size|embed_batch_size)=(\d+)", message)}
    assert len(sizes) == 1, message
    assert "OpenAIEmbeddings(chunk_size=" in message
    assert "OpenAIEmbedding(embed_batch_size=" in message
    return sizes.pop()


async def test_openais_largest_batch_is_embedded_one_text_per_request(make_runtime: RuntimeFactory) -> None:
    api = FakeEmbeddingsAPI(dimensions=128)
    runtime = make_runtime(transports=Transports(embeddings=api.transport), embeddings_dimensions=128)
    texts = [f"text number {index}" for index in range(2048)]
    reply = await dispatch(runtime, batch(texts), context())
    assert reply["statusCode"] == 200, reply["body"][:500]
    data = json.loads(reply["body"])["data"]
    assert [item["index"] for item in data] == list(range(2048))
    assert len(base64.b64decode(data[-1]["embedding"])) == 128 * 4
    assert api.requests == 2048


async def test_more_than_openais_cap_is_413_naming_the_client_settings(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI
) -> None:
    status, reply = await call(make_runtime(), batch(["t"] * 2049))
    assert (status, reply["error"]["code"]) == (413, "too_many_inputs")
    assert advised(reply["error"]["message"]) == 2048
    assert api.requests == 0


@pytest.mark.parametrize("encoding_format", ["base64", "float"])
async def test_a_reply_over_the_gateways_limit_is_refused_before_paying(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, encoding_format: str
) -> None:
    """At 256 dimensions, 2,048 vectors fit in no format; the count advised does, measured."""
    runtime = make_runtime()
    texts = [f"text number {index}" for index in range(2048)]
    status, reply = await call(runtime, batch(texts, encoding_format=encoding_format))
    assert (status, reply["error"]["code"]) == (413, "reply_too_large")
    assert api.requests == 0
    fit = advised(reply["error"]["message"])
    assert fit == REPLY_LIMIT_BYTES // reply_bytes_per_input(256, encoding_format)
    if encoding_format == "float":
        assert 'encoding_format="base64"' in reply["error"]["message"]

    answer = await dispatch(runtime, batch(texts[:fit], encoding_format=encoding_format), context())
    assert answer["statusCode"] == 200
    assert len(answer["body"].encode()) <= REPLY_LIMIT_BYTES


async def test_a_batch_the_time_left_cannot_hold_is_refused_before_paying(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI
) -> None:
    """100 requests a second and 9 s to work (a 12 s timeout less its margin): 1,000 distinct texts
    would take 11 s. Repeats cost nothing, so 1,000 inputs of 200 distinct texts go through."""
    runtime = make_runtime(embeddings_rps=100)
    short = context(timeout_s=12.0)
    status, reply = await call(runtime, batch([f"text {index}" for index in range(1000)]), short)
    assert (status, reply["error"]["code"]) == (413, "batch_too_slow")
    message = reply["error"]["message"]
    assert re.match(r"1000 distinct texts take about 1[123] s .* has [89] s left", message), message
    assert "http_function_timeout_s" in message
    assert 700 <= advised(message) <= 820
    assert api.requests == 0

    started = time.monotonic()
    status, reply = await call(
        runtime, batch([f"text {index % 200}" for index in range(1000)]), context(timeout_s=12.0)
    )
    assert status == 200, reply
    assert len(reply["data"]) == 1000
    assert api.requests == 200
    assert time.monotonic() - started < 9


async def test_an_oversized_embeddings_body_names_the_client_settings(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime(http_max_body_bytes=100)
    status, reply = await call(runtime, batch(["x" * 200]))
    assert (status, reply["error"]["code"]) == (413, "body_too_large")
    assert "HTTP_MAX_BODY_BYTES" in reply["error"]["message"]
    assert "OpenAIEmbeddings(chunk_size=" in reply["error"]["message"]


async def test_a_short_request_is_never_refused_for_time(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI
) -> None:
    """One text with a second left: the pace needs a millisecond, so it goes."""
    status, reply = await call(make_runtime(), batch(["one text"]), context(timeout_s=1.5))
    assert status == 200, reply
