"""Unit: the embeddings client against respx-faked API answers (no network)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from embedding_pipeline.clients.embeddings import EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import (
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsRateLimited,
    EmbeddingsRejected,
    InputTooLong,
    OutOfTime,
)

URL = "https://ai.api.cloud.yandex.net/v1/embeddings"
MODEL = "emb://b1gfolder/text-search-doc/latest"
TOKEN = "t1.iam-token-that-must-never-leak-0123456789"


def ok(vector_length: int = 256, tokens: int = 7) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.5] * vector_length}],
            "model": MODEL,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def client(sleeps: Sleeps) -> EmbeddingsClient:
    return EmbeddingsClient(
        httpx.AsyncClient(),
        base_url="https://ai.api.cloud.yandex.net/v1",
        dimensions=256,
        limiter=RateLimiter(1000),
        concurrency=4,
        max_attempts=4,
        timeout_s=5,
        sleep=sleeps,
        jitter=lambda: 0.5,
    )


async def embed(client: EmbeddingsClient, usage: EmbeddingsUsage, text: str = "привет, мир") -> list[float]:
    result = await client.embed(text, model=MODEL, authorization=f"Bearer {TOKEN}", usage=usage)
    return result.vector.tolist()


@respx.mock
async def test_sends_one_text_with_the_model_uri_and_bearer_token(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(return_value=ok(tokens=11))
    usage = EmbeddingsUsage()
    vector = await embed(client, usage)
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {"model": MODEL, "input": "привет, мир", "encoding_format": "float"}
    assert len(vector) == 256
    assert (usage.requests, usage.tokens) == (1, 11)


def _throttled_twice() -> list[httpx.Response]:
    refusal = {"error": {"message": "ai.embeddingsTextEmbeddingRequestsPerSecond.rate"}}
    return [httpx.Response(429, json=refusal), httpx.Response(429, json=refusal), ok()]


@respx.mock
async def test_a_429_slows_the_pacer_and_goes_again_at_the_next_slot(
    client: EmbeddingsClient, sleeps: Sleeps
) -> None:
    respx.post(URL).mock(side_effect=_throttled_twice())
    usage = EmbeddingsUsage()
    await embed(client, usage)
    assert (usage.requests, usage.throttled, usage.retries) == (3, 2, 2)
    assert sleeps.calls == []  # no backoff of its own: the pacer's next slot is the wait
    assert client.limiter.rate < 1000  # the pace was cut


@respx.mock
async def test_an_interactive_request_retries_a_429_within_tens_of_milliseconds(
    client: EmbeddingsClient, sleeps: Sleeps
) -> None:
    respx.post(URL).mock(side_effect=_throttled_twice())
    usage = EmbeddingsUsage()
    await client.embed("q", model=MODEL, authorization=f"Bearer {TOKEN}", usage=usage, interactive=True)
    assert usage.throttled == 2
    assert sleeps.calls == [pytest.approx(0.045), pytest.approx(0.045)]  # 30 ms + jitter 0.5 × 30 ms


@respx.mock
async def test_429s_do_not_use_up_the_attempts_that_other_failures_have(client: EmbeddingsClient) -> None:
    """max_attempts (4 here) bounds failures; 429s are the pacer's business, up to 8 × as many."""
    refusal = httpx.Response(
        429, json={"error": {"message": "ai.embeddingsTextEmbeddingRequestsPerSecond.rate"}}
    )
    respx.post(URL).mock(side_effect=[refusal] * 20 + [httpx.Response(503), ok()])
    usage = EmbeddingsUsage()
    assert len(await embed(client, usage)) == 256
    assert (usage.throttled, usage.requests) == (20, 22)


@respx.mock
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(client: EmbeddingsClient, status: int) -> None:
    respx.post(URL).mock(side_effect=[httpx.Response(status), ok()])
    usage = EmbeddingsUsage()
    assert len(await embed(client, usage)) == 256
    assert usage.requests == 2


@respx.mock
async def test_timeouts_and_dropped_connections_are_retried(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), ok()])
    usage = EmbeddingsUsage()
    assert len(await embed(client, usage)) == 256
    assert usage.retries == 2


@respx.mock
async def test_persistent_429_raises_rate_limited(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=httpx.Response(429, json={"message": "rate"}))
    with pytest.raises(EmbeddingsRateLimited):
        await embed(client, EmbeddingsUsage())


@respx.mock
async def test_persistent_5xx_raises_transient_error(client: EmbeddingsClient, sleeps: Sleeps) -> None:
    respx.post(URL).mock(return_value=httpx.Response(503))
    usage = EmbeddingsUsage()
    with pytest.raises(EmbeddingsError, match="after 4 attempts"):
        await embed(client, usage)
    # Three waits between four attempts, none after the last: the error comes as soon as it is known.
    assert (usage.requests, usage.retries, len(sleeps.calls)) == (4, 3, 3)


@respx.mock
async def test_the_last_attempt_reports_the_apis_failure_not_the_deadline(client: EmbeddingsClient) -> None:
    """Past the last attempt there is no retry to wait for, so a deadline shorter than that wait
    must not turn the API's failure (an error to alert on) into "out of time" (a resumable one)."""
    respx.post(URL).mock(return_value=httpx.Response(503))
    with pytest.raises(EmbeddingsError, match="after 4 attempts"):
        await client.embed(
            "x",
            model=MODEL,
            authorization=f"Bearer {TOKEN}",
            usage=EmbeddingsUsage(),
            deadline=Deadline.after(1.2),
        )


@respx.mock
async def test_too_long_400_raises_input_too_long(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(
        return_value=httpx.Response(
            400, json={"error": {"message": "number of input tokens must be no more than 2048, got 2301"}}
        )
    )
    with pytest.raises(InputTooLong, match="2048"):
        await embed(client, EmbeddingsUsage())


@respx.mock
async def test_a_400_only_this_text_gets_is_a_permanent_rejection(client: EmbeddingsClient) -> None:
    """The canary (tests/test_upstream_answers.py) is accepted: the text is at fault, not a setting."""
    respx.post(URL).mock(
        side_effect=[httpx.Response(400, json={"error": {"message": "text is not allowed"}}), ok()]
    )
    with pytest.raises(EmbeddingsRejected, match="text is not allowed"):
        await embed(client, EmbeddingsUsage())


@respx.mock
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_failures_are_not_retried_and_do_not_leak_the_token(
    client: EmbeddingsClient, status: int
) -> None:
    route = respx.post(URL).mock(
        return_value=httpx.Response(status, json={"error": {"message": f"bad token {TOKEN}"}})
    )
    with pytest.raises(EmbeddingsAuthError) as raised:
        await embed(client, EmbeddingsUsage())
    assert route.call_count == 1
    assert TOKEN not in str(raised.value)


@respx.mock
async def test_wrong_dimension_is_an_error(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=ok(vector_length=384))
    with pytest.raises(EmbeddingsError, match="384 dimensions"):
        await embed(client, EmbeddingsUsage())


@respx.mock
async def test_no_retry_past_the_deadline(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=httpx.Response(503))
    with pytest.raises(OutOfTime):
        await client.embed(
            "text",
            model=MODEL,
            authorization="Api-Key k",
            usage=EmbeddingsUsage(),
            deadline=Deadline.after(0.01),
        )


@respx.mock
async def test_api_key_authorization_header(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(return_value=ok())
    await client.embed("text", model=MODEL, authorization="Api-Key AQVNsecret", usage=EmbeddingsUsage())
    assert route.calls.last.request.headers["Authorization"] == "Api-Key AQVNsecret"
