"""A vector of another length than expected: one text's garbage (its document parked, after retries)
or the deployment's mistake (a wrong EMBEDDINGS_DIMENSIONS, known after two requests per instance:
the first text's, and a canary's that tells the two apart).

Unit tests on the client (respx, no network), then functional ones through the pipeline (SeaweedFS,
the embeddings API faked with respx as the runtime's transport).
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from devstack.events import timer_event
from embedding_pipeline.clients.embeddings import CANARY_TEXT, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsModelError, WrongVectorLength
from embedding_pipeline.runtime import Transports
from handlers import dispatch
from testkit.yandex_emulator import vector_for
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json

URL = "https://ai.api.cloud.yandex.net/v1/embeddings"
MODEL = "emb://b1gfolder/text-search-doc/latest"
POISON = "garbled"  # a text holding this gets a vector of another length


def answer(request: httpx.Request, *, length: int = 256) -> httpx.Response:
    """The API's answer: the text's own vector, `length` long, or 128 long for a POISON text."""
    text = json.loads(request.content)["input"]
    vector = vector_for(text, 128 if POISON in text else length)
    usage = {"prompt_tokens": 3, "total_tokens": 3}
    return httpx.Response(200, json={"object": "list", "data": [{"embedding": vector}], "usage": usage})


async def no_sleep(_seconds: float) -> None:
    return None


def client() -> EmbeddingsClient:
    return EmbeddingsClient(
        httpx.AsyncClient(),
        base_url="https://ai.api.cloud.yandex.net/v1",
        dimensions=256,
        limiter=RateLimiter(1000),
        concurrency=16,
        max_attempts=3,
        timeout_s=5,
        sleep=no_sleep,
        jitter=lambda: 0.5,
    )


async def embed(embeddings: EmbeddingsClient, text: str) -> list[float]:
    result = await embeddings.embed(text, model=MODEL, authorization="Api-Key k", usage=EmbeddingsUsage())
    return result.vector.tolist()


@respx.mock
async def test_one_texts_wrong_length_is_retried_then_that_texts_error() -> None:
    route = respx.post(URL).mock(side_effect=answer)
    embeddings = client()
    assert len(await embed(embeddings, "a good text")) == 256

    with pytest.raises(WrongVectorLength, match="128 dimensions where it answers other texts with 256"):
        await embed(embeddings, f"a {POISON} text")

    assert route.call_count == 1 + 3  # the good text, then the bad one at each of the 3 attempts
    assert len(await embed(embeddings, "another good text")) == 256  # the model is not blamed


@respx.mock
async def test_a_model_with_another_length_is_known_after_two_requests() -> None:
    route = respx.post(URL).mock(side_effect=lambda request: answer(request, length=384))
    embeddings = client()

    # Sixteen texts in flight at once, the client's concurrency: the first and the canary tell.
    results = await asyncio.gather(
        *(embed(embeddings, f"text number {n}") for n in range(16)), return_exceptions=True
    )

    assert all(isinstance(result, EmbeddingsModelError) for result in results), results
    assert "returned 384 dimensions, EMBEDDINGS_DIMENSIONS is 256" in str(results[0])
    assert route.call_count == 2
    assert json.loads(route.calls[1].request.content)["input"] == CANARY_TEXT
    with pytest.raises(EmbeddingsModelError):  # remembered: a later text costs no request either
        await embed(embeddings, "one more")
    assert route.call_count == 2


@respx.mock
async def test_a_garbled_first_answer_is_that_texts_error_not_the_models() -> None:
    route = respx.post(URL).mock(side_effect=answer)
    embeddings = client()

    # The instance's very first text is the garbled one: the canary comes back 256 long.
    with pytest.raises(WrongVectorLength, match="128 dimensions where it answers other texts with 256"):
        await embed(embeddings, f"a {POISON} text")

    assert route.call_count == 1 + 1 + 2  # the text, the canary, then the text's 2 retries
    assert len(await embed(embeddings, "a good text")) == 256  # the instance goes on embedding
    assert route.call_count == 5


@respx.mock
async def test_a_refused_check_of_a_first_answer_is_retried_not_a_setting() -> None:
    replies = iter([httpx.Response(429, json={"error": {"message": "limit"}})] * 2)

    def api(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["input"] == CANARY_TEXT:
            return next(replies, None) or answer(request)
        return answer(request)

    route = respx.post(URL).mock(side_effect=api)
    usage = EmbeddingsUsage()
    embeddings = client()

    with pytest.raises(WrongVectorLength):
        await embeddings.embed(f"a {POISON} text", model=MODEL, authorization="Api-Key k", usage=usage)

    assert usage.throttled == 2  # the canary sent again at its next slot, then it told
    assert route.call_count == 1 + 3 + 2


@respx.mock
async def test_a_refused_text_whose_canary_has_another_length_costs_one_canary() -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["input"] == CANARY_TEXT:
            return answer(request, length=384)
        return httpx.Response(400, json={"error": {"message": "something about this text"}})

    route = respx.post(URL).mock(side_effect=api)

    with pytest.raises(EmbeddingsModelError, match="returned 384 dimensions"):
        await embed(client(), "a text the API refuses")

    # The canary's own answer tells the length: no second canary to check the first.
    assert [json.loads(call.request.content)["input"] for call in route.calls] == [
        "a text the API refuses",
        CANARY_TEXT,
    ]


def respx_transports(router: respx.Router) -> Transports:
    return Transports(embeddings=httpx.MockTransport(router.async_handler))


async def test_a_document_with_one_garbled_answer_is_parked_and_the_others_embedded(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    router = respx.Router(assert_all_called=False)
    router.post(URL).mock(side_effect=answer)
    runtime = make_runtime(
        source_bucket=s3_bucket, embeddings_max_attempts=2, transports=respx_transports(router)
    )
    # The model has answered with the configured length in this instance before.
    await storage.put(s3_bucket, "incoming/first.md", b"# First\n\nA document embedded before the others.")
    keys = ["incoming/first.md", "incoming/bad.md", "incoming/good.md"]
    first = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=keys[:1]), context()
    )
    assert first["documents"][0]["outcome"] == "embedded"
    await storage.put(s3_bucket, keys[1], f"# Bad\n\nA fine paragraph.\n\nA {POISON} paragraph.".encode())
    await storage.put(s3_bucket, keys[2], b"# Good\n\nA document with nothing wrong in it.")

    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=keys), context()
    )

    outcomes = {document["key"]: document["outcome"] for document in reply["documents"]}
    assert outcomes["incoming/bad.md"] == "parked"
    assert outcomes["incoming/good.md"] == "embedded"
    error = await read_json(storage, s3_bucket, "embeddings/_errors/incoming/bad.md.json")
    assert error["error"] == "wrong_vector_length"
    assert "128 dimensions where it answers other texts with 256" in error["reason"]
    assert "2 attempts" in error["reason"]  # retried first, as a 5xx would be
    assert "embeddings/incoming/good.md.manifest.json" in await object_keys(storage, s3_bucket)
    assert "embeddings/incoming/bad.md.manifest.json" not in await object_keys(storage, s3_bucket)
    # Reconcile sees it parked, and tries it no more.
    tick = await dispatch(runtime, timer_event(None), context())
    assert tick["outcomes"] == {}


async def test_a_wrong_embeddings_dimensions_stops_reconcile_after_two_requests_and_parks_nothing(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    router = respx.Router(assert_all_called=False)
    route = router.post(URL).mock(side_effect=answer)  # 256-long vectors
    runtime = make_runtime(
        source_bucket=s3_bucket, embeddings_dimensions=384, transports=respx_transports(router)
    )
    for n in range(5):
        paragraphs = "\n\n".join(f"Paragraph {p} of document {n}, with words enough." for p in range(12))
        await storage.put(s3_bucket, f"incoming/doc-{n}.md", f"# Doc {n}\n\n{paragraphs}".encode())

    reply = await dispatch(runtime, timer_event(None), context())

    assert reply["stopped_by"] == "configuration problem: embeddings_model_error"
    assert reply["outcomes"] == {}
    assert route.call_count == 2  # the first text and the canary, not one per text in flight
    assert not [key for key in await object_keys(storage, s3_bucket) if "/_errors/" in key]
    # A second tick (a warm instance) knows already: no request at all.
    await dispatch(runtime, timer_event(None), context())
    assert route.call_count == 2
