"""Unit and functional: what the embeddings client makes of each answer the API can give.

Garbage in a 200, undecodable bodies and every httpx exception; which refusals mean "split the text",
"a setting is wrong" or "this text is refused" (settled by a canary request, whose verdict is kept);
requests that never outlive the invocation; `dimensions` passed through and checked. Faked with respx,
and against the loopback Yandex emulator where a real socket matters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from embedding_pipeline.clients.embeddings import CANARY_TEXT, CANARY_TTL_S, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import (
    DimensionsNotSupported,
    EmbeddingsError,
    EmbeddingsModelError,
    EmbeddingsRejected,
    InputTooLong,
    OutOfTime,
    PermanentError,
    is_configuration_problem,
)
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

URL = "https://ai.api.cloud.yandex.net/v1/embeddings"
MODEL = "emb://b1gfolder/text-search-doc/latest"
TIMEOUT_S = 5.0


def ok(vector: list[Any] | None = None, tokens: int = 7) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector or [0.5] * 256}],
            "model": MODEL,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def refusal(status: int, message: str) -> httpx.Response:
    """Yandex's error shape."""
    return httpx.Response(status, json={"error": {"grpcCode": 3, "httpCode": status, "message": message}})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_sleep(_seconds: float) -> None:
    return None


def make_client(
    http: httpx.AsyncClient, *, url: str = "https://ai.api.cloud.yandex.net/v1", clock: Clock | None = None
) -> EmbeddingsClient:
    return EmbeddingsClient(
        http,
        base_url=url,
        dimensions=256,
        limiter=RateLimiter(1000),
        concurrency=8,
        max_attempts=3,
        timeout_s=TIMEOUT_S,
        sleep=no_sleep,
        jitter=lambda: 0.5,
        clock=clock or time.monotonic,
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as opened:
        yield opened


@pytest.fixture
def client(http: httpx.AsyncClient) -> EmbeddingsClient:
    return make_client(http)


async def embed(
    client: EmbeddingsClient,
    usage: EmbeddingsUsage,
    text: str = "текст",
    *,
    deadline: Deadline | None = None,
    dimensions: int | None = None,
) -> list[float]:
    embedding = await client.embed(
        text,
        model=MODEL,
        authorization="Api-Key k",
        usage=usage,
        deadline=deadline,
        dimensions=dimensions,
    )
    return embedding.vector.tolist()


def sent_texts(route: respx.Route) -> list[str]:
    return [json.loads(call.request.content)["input"] for call in route.calls]


# A 200 is checked before anything of it is kept.


@respx.mock
@pytest.mark.parametrize(
    "embedding",
    [
        "[NaN, 0.5]",
        "[Infinity, 0.5]",
        "[-Infinity, 0.5]",
        "[1e999, 0.5]",
        "[true, 0.5]",
        '["0.5", 0.5]',
        "[null, 0.5]",
        "[" + "9" * 400 + ", 0.5]",
        '{"0": 0.5}',
        "[[0.5], 0.5]",
    ],
)
async def test_a_vector_of_anything_but_finite_numbers_is_an_upstream_error(
    client: EmbeddingsClient, embedding: str
) -> None:
    body = '{"data": [{"embedding": ' + embedding + '}], "usage": {"total_tokens": 3}}'
    route = respx.post(URL).mock(return_value=httpx.Response(200, content=body.encode()))
    with pytest.raises(EmbeddingsError, match="200") as raised:
        await embed(client, EmbeddingsUsage())
    assert not isinstance(raised.value, PermanentError | EmbeddingsModelError)  # retried later, never parked
    assert route.call_count == 1  # a 200 is billed: it is not asked for again at once


def undecodable() -> httpx.Response:
    """A body its Content-Encoding does not fit: httpx raises DecodingError as it reads it."""
    return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip"))


@respx.mock
async def test_an_undecodable_body_is_retried_like_a_5xx(client: EmbeddingsClient) -> None:
    broken = undecodable()
    respx.post(URL).mock(side_effect=[broken, ok()])
    usage = EmbeddingsUsage()
    assert len(await embed(client, usage)) == 256
    assert (usage.requests, usage.retries) == (2, 1)


@respx.mock
async def test_an_always_undecodable_body_is_a_transient_error(client: EmbeddingsClient) -> None:
    broken = undecodable()
    respx.post(URL).mock(return_value=broken)
    with pytest.raises(EmbeddingsError, match="DecodingError"):
        await embed(client, EmbeddingsUsage())


def httpx_exceptions() -> Iterator[Exception]:
    """One instance of every exception class httpx exports."""
    request = httpx.Request("POST", URL)
    for name in sorted(dir(httpx)):
        kind = getattr(httpx, name)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            continue
        if kind is httpx.HTTPStatusError:
            yield kind("boom", request=request, response=httpx.Response(500, request=request))
            continue
        try:
            yield kind("boom")
        except TypeError:
            yield kind()


@respx.mock
@pytest.mark.parametrize("exc", list(httpx_exceptions()), ids=lambda exc: type(exc).__name__)
async def test_no_httpx_exception_leaves_the_client(client: EmbeddingsClient, exc: Exception) -> None:
    respx.post(URL).mock(side_effect=exc)
    with pytest.raises(EmbeddingsError, match=type(exc).__name__):
        await embed(client, EmbeddingsUsage())


# Only the documented too-long answers split a text.


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [
        refusal(400, "number of input tokens must be no more than 2048, got 2301"),
        refusal(400, "folder_id=b1g: text length is 349354, which is outside the range (0, 100000]"),
        refusal(400, "This model's maximum context length is 8192 tokens, however you requested 9000"),
        httpx.Response(413, text="Payload Too Large"),
    ],
)
async def test_documented_too_long_answers_ask_for_a_split(
    client: EmbeddingsClient, answer: httpx.Response
) -> None:
    route = respx.post(URL).mock(return_value=answer)
    with pytest.raises(InputTooLong):
        await embed(client, EmbeddingsUsage())
    assert route.call_count == 1


@respx.mock
@pytest.mark.parametrize(
    "message",
    ["invalid token in input", "rate limit policy violated", "length must be set", "exceeds allowed chars"],
)
async def test_other_400s_that_mention_tokens_or_limits_are_not_split(
    client: EmbeddingsClient, message: str
) -> None:
    route = respx.post(URL).mock(
        side_effect=lambda request: ok() if CANARY_TEXT in request.content.decode() else refusal(400, message)
    )
    with pytest.raises(EmbeddingsRejected, match=message):
        await embed(client, EmbeddingsUsage())
    assert sent_texts(route) == ["текст", CANARY_TEXT]


# A refusal no text could escape is a setting's problem; one only this text gets, the text's.


@respx.mock
@pytest.mark.parametrize(
    "answer",
    [
        refusal(400, "invalid model_uri"),
        refusal(400, "Failed to parse model URI"),
        refusal(400, "Failed to get model"),
        refusal(400, "Specified folder ID 'b1gx' does not match with service account folder ID 'b1gy'"),
        refusal(404, "The model `text-search-doc` does not exist or you do not have access to it."),
        httpx.Response(404, text="404 page not found"),
    ],
)
async def test_an_unknown_model_is_a_configuration_problem_without_a_canary(
    client: EmbeddingsClient, answer: httpx.Response
) -> None:
    route = respx.post(URL).mock(return_value=answer)
    with capture_logs() as logs, pytest.raises(EmbeddingsModelError, match="does not accept model") as raised:
        await embed(client, EmbeddingsUsage())
    assert is_configuration_problem(raised.value)
    assert route.call_count == 1
    assert [(line["event"], line["log_level"]) for line in logs] == [("embeddings_model_refused", "error")]


@respx.mock
async def test_a_400_every_text_gets_is_a_model_error_found_by_one_canary(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(return_value=refusal(400, "request is invalid"))
    usage = EmbeddingsUsage()
    with capture_logs() as logs, pytest.raises(EmbeddingsModelError) as raised:
        await embed(client, usage, "первый")
    assert str(raised.value) == (
        f"the embeddings API refuses every text with model {MODEL}: 400: request is invalid"
    )
    assert is_configuration_problem(raised.value)
    canary = json.loads(route.calls.last.request.content)
    assert canary == {"model": MODEL, "input": CANARY_TEXT, "encoding_format": "float"}
    assert usage.requests == 2  # the canary is a request like any other
    assert [line["event"] for line in logs if line["log_level"] == "error"] == ["embeddings_model_refused"]

    # The verdict is kept: the next refused text costs no second canary.
    with pytest.raises(EmbeddingsModelError):
        await embed(client, usage, "второй")
    assert sent_texts(route) == ["первый", CANARY_TEXT, "второй"]


@respx.mock
async def test_a_400_only_this_text_gets_is_a_rejection_and_the_verdict_is_kept(
    client: EmbeddingsClient,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        text = json.loads(request.content)["input"]
        return refusal(400, "text is not allowed") if text.startswith("bad") else ok(tokens=2)

    route = respx.post(URL).mock(side_effect=answer)
    usage = EmbeddingsUsage()
    with capture_logs() as logs, pytest.raises(EmbeddingsRejected) as raised:
        await embed(client, usage, "bad one")
    assert not is_configuration_problem(raised.value)
    assert [(line["event"], line["log_level"]) for line in logs] == [("embeddings_text_rejected", "warning")]
    assert (usage.requests, usage.tokens) == (2, 2)  # the canary's tokens were billed too

    with pytest.raises(EmbeddingsRejected):
        await embed(client, usage, "bad two")
    assert sent_texts(route) == ["bad one", CANARY_TEXT, "bad two"]


@respx.mock
async def test_a_flood_of_bad_texts_costs_one_canary(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(
        side_effect=lambda request: ok() if CANARY_TEXT in request.content.decode() else refusal(400, "no")
    )
    usage = EmbeddingsUsage()
    outcomes = await asyncio.gather(
        *(embed(client, usage, f"bad {number}") for number in range(20)), return_exceptions=True
    )
    assert all(isinstance(outcome, EmbeddingsRejected) for outcome in outcomes)
    assert sent_texts(route).count(CANARY_TEXT) == 1
    assert usage.requests == 21


@respx.mock
async def test_the_verdict_expires(http: httpx.AsyncClient) -> None:
    clock = Clock()
    client = make_client(http, clock=clock)
    route = respx.post(URL).mock(
        side_effect=lambda request: ok() if CANARY_TEXT in request.content.decode() else refusal(400, "no")
    )
    for _ in range(2):
        with pytest.raises(EmbeddingsRejected):
            await embed(client, EmbeddingsUsage())
    clock.now += CANARY_TTL_S + 1
    with pytest.raises(EmbeddingsRejected):
        await embed(client, EmbeddingsUsage())
    assert sent_texts(route).count(CANARY_TEXT) == 2


@respx.mock
async def test_a_canary_that_fails_transiently_decides_nothing(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(
        side_effect=[refusal(400, "no"), httpx.Response(503), refusal(400, "no"), ok()]
    )
    with pytest.raises(EmbeddingsError, match="check failed: 503") as raised:
        await embed(client, EmbeddingsUsage())
    assert not isinstance(raised.value, EmbeddingsModelError)
    # Nothing was cached: the next refused text is checked again, and this time the check settles it.
    with pytest.raises(EmbeddingsRejected):
        await embed(client, EmbeddingsUsage())
    assert route.call_count == 4


# No request outlives the invocation.


@respx.mock
async def test_a_request_gets_at_most_the_time_left(client: EmbeddingsClient) -> None:
    timeouts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"]["read"])
        return ok()

    respx.post(URL).mock(side_effect=answer)
    await embed(client, EmbeddingsUsage(), deadline=Deadline.after(2.0))
    await embed(client, EmbeddingsUsage(), deadline=Deadline.after(3600))
    await embed(client, EmbeddingsUsage())
    assert 0 < timeouts[0] <= 2.0
    assert timeouts[1:] == [TIMEOUT_S, TIMEOUT_S]


@respx.mock
async def test_a_request_still_running_at_the_deadline_is_out_of_time(client: EmbeddingsClient) -> None:
    async def hang(_request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()  # an API that never answers; cancelled by the client's timeout
        raise AssertionError("unreachable")

    respx.post(URL).mock(side_effect=hang)
    usage = EmbeddingsUsage()
    started = time.monotonic()
    with pytest.raises(OutOfTime, match="deadline"):
        await embed(client, usage, deadline=Deadline.after(0.3))
    assert time.monotonic() - started < TIMEOUT_S / 2  # not EMBEDDINGS_TIMEOUT_S, and no retry
    assert (usage.requests, usage.retries) == (1, 0)


@respx.mock
async def test_a_timeout_well_before_the_deadline_is_retried(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(side_effect=[httpx.ReadTimeout("slow"), ok()])
    usage = EmbeddingsUsage()
    await embed(client, usage, deadline=Deadline.after(3600))
    assert usage.retries == 1


def test_against_a_real_socket_a_hung_api_is_out_of_time_at_the_deadline() -> None:
    config = EmulatorConfig(rps=1000, fault_rate=1.0, faults=("timeout",), hang_s=3.0)
    with YandexEmulator(config) as emulator:

        async def run() -> None:
            async with httpx.AsyncClient() as http:
                client = make_client(http, url=emulator.url)
                with pytest.raises(OutOfTime):
                    await embed(client, EmbeddingsUsage(), deadline=Deadline.after(0.4))

        started = time.monotonic()
        asyncio.run(run())
        assert time.monotonic() - started < 2.0


# `dimensions` is sent only when asked for, and the answer must honour it.


@respx.mock
async def test_dimensions_are_sent_only_when_asked_for_and_checked(client: EmbeddingsClient) -> None:
    route = respx.post(URL).mock(side_effect=[ok([0.5] * 128), ok()])
    assert len(await embed(client, EmbeddingsUsage(), dimensions=128)) == 128
    assert json.loads(route.calls[0].request.content)["dimensions"] == 128
    await embed(client, EmbeddingsUsage())
    assert "dimensions" not in json.loads(route.calls[1].request.content)


@respx.mock
async def test_a_model_that_ignores_dimensions_does_not_support_them(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=ok([0.5] * 256))
    with pytest.raises(DimensionsNotSupported, match=f"model {MODEL} does not support dimensions=128"):
        await embed(client, EmbeddingsUsage(), dimensions=128)


@respx.mock
async def test_a_vector_of_neither_length_is_an_upstream_error(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=ok([0.5] * 64))
    with pytest.raises(EmbeddingsError, match="64 dimensions, 128 were asked for") as raised:
        await embed(client, EmbeddingsUsage(), dimensions=128)
    assert not isinstance(raised.value, PermanentError)


@respx.mock
async def test_a_wrong_length_without_dimensions_is_a_setting_problem(client: EmbeddingsClient) -> None:
    respx.post(URL).mock(return_value=ok([0.5] * 384))
    with pytest.raises(EmbeddingsModelError, match="EMBEDDINGS_DIMENSIONS is 256"):
        await embed(client, EmbeddingsUsage())


# The emulator answers as Yandex does, and the client reads it the same way.


@pytest.fixture(scope="module")
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator(EmulatorConfig(rps=1000, max_tokens=50)) as running:
        yield running


def emulator_post(emulator: YandexEmulator, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{emulator.url}/embeddings", json=body, headers={"Authorization": "Api-Key k"}, timeout=5
    )


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("emb://b1g/text-search-docs/latest", "invalid model_uri"),
        ("text-search-doc", "Failed to parse model URI"),
        ("gpt://b1g/text-search-doc/latest", "Failed to parse model URI"),
    ],
)
def test_emulator_refuses_unknown_models_as_yandex_does(
    emulator: YandexEmulator, model: str, message: str
) -> None:
    answer = emulator_post(emulator, {"model": model, "input": "a"})
    assert answer.status_code == 400
    assert message in answer.json()["error"]["message"]


def test_emulator_takes_only_its_own_dimensions(emulator: YandexEmulator) -> None:
    own = emulator_post(emulator, {"model": MODEL, "input": "a", "dimensions": 256})
    assert (own.status_code, len(own.json()["data"][0]["embedding"])) == (200, 256)
    other = emulator_post(emulator, {"model": MODEL, "input": "a", "dimensions": 128})
    assert other.status_code == 400
    assert "dimensions" in other.json()["error"]["message"]
    assert "text-search-doc" in other.json()["error"]["message"]


async def test_the_client_reads_the_emulators_refusals(
    emulator: YandexEmulator, http: httpx.AsyncClient
) -> None:
    client = make_client(http, url=emulator.url)
    usage = EmbeddingsUsage()
    with pytest.raises(InputTooLong, match="no more than 50"):
        await embed(client, usage, "слово " * 100)
    with pytest.raises(DimensionsNotSupported, match="text-search-doc"):
        await embed(client, usage, dimensions=128)
    with pytest.raises(EmbeddingsModelError, match="invalid model_uri"):
        await client.embed(
            "a", model="emb://b1g/text-search-docs/latest", authorization="Api-Key k", usage=usage
        )
    assert usage.requests == 3  # each answer speaks for itself: no canary was needed
