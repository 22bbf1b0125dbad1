"""Unit: the Vision OCR client against respx-faked answers (no network), and what it reads of them."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
import respx

from embedding_pipeline.clients.ocr import OcrCall, OcrClient
from embedding_pipeline.clients.ocr_replies import page_text, result_pages
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import OcrAuthError, OcrError, OcrRefused, OutOfTime

URL = "https://ocr.example/ocr/v1"
OPERATIONS = "https://operation.example/operations"


def client(http: httpx.AsyncClient, *, rps: float = 1000.0, attempts: int = 4) -> OcrClient:
    return OcrClient(
        http, url=URL, operations_url=OPERATIONS, limiter=RateLimiter(rps), max_attempts=attempts
    )


def call(seconds: float = 60.0, model: str = "page") -> OcrCall:
    return OcrCall(
        authorization="Bearer t1.secret-token",
        folder_id="b1gfolder",
        model=model,
        languages=["ru", "en"],
        deadline=Deadline.after(seconds),
    )


def page(text: str, number: int = 0, *, snake: bool = False) -> dict[str, object]:
    if snake:
        return {"result": {"text_annotation": {"full_text": text}, "page": str(number)}}
    return {"result": {"textAnnotation": {"fullText": text, "markdown": f"# {text}"}, "page": str(number)}}


@respx.mock
async def test_recognize_sends_the_documented_request_and_reads_the_text() -> None:
    route = respx.post(f"{URL}/recognizeText").mock(return_value=httpx.Response(200, json=page("Акт № 17")))
    ocr = call()
    async with httpx.AsyncClient() as http:
        text = await client(http).recognize(b"\x89PNG...", "image/png", ocr)
    assert text.text == "Акт № 17"
    request = route.calls.last.request
    assert request.headers["x-data-logging-enabled"] == "false"  # the customer's scans are not logged
    assert request.headers["x-folder-id"] == "b1gfolder"
    assert request.headers["authorization"] == "Bearer t1.secret-token"
    body = json.loads(request.content)
    assert body == {
        "mimeType": "image/png",
        "languageCodes": ["ru", "en"],
        "model": "page",
        "content": base64.b64encode(b"\x89PNG...").decode(),
    }
    assert (ocr.usage.requests, ocr.usage.pages) == (1, 1)


@respx.mock
async def test_the_markdown_model_gives_its_markdown() -> None:
    respx.post(f"{URL}/recognizeText").mock(return_value=httpx.Response(200, json=page("Итого")))
    async with httpx.AsyncClient() as http:
        text = await client(http).recognize(b"x", "image/jpeg", call(model="markdown"))
    assert text.text == "# Итого"


@respx.mock
async def test_a_429_and_a_503_are_sent_again_and_counted() -> None:
    route = respx.post(f"{URL}/recognizeText").mock(
        side_effect=[
            httpx.Response(429, json={"code": 8, "message": "RESOURCE_EXHAUSTED"}),
            httpx.Response(503),
            httpx.Response(200, json=page("ok")),
        ]
    )
    ocr = call()
    async with httpx.AsyncClient() as http:
        text = await client(http).recognize(b"x", "image/png", ocr)
    assert text.text == "ok"
    assert route.call_count == 3
    assert (ocr.usage.throttled, ocr.usage.retries, ocr.usage.requests) == (1, 2, 3)


@respx.mock
async def test_401_is_a_configuration_problem_naming_the_role_not_the_token() -> None:
    respx.post(f"{URL}/recognizeText").mock(
        return_value=httpx.Response(403, json={"code": 7, "message": "Permission denied"})
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(OcrAuthError) as refused:
            await client(http).recognize(b"x", "image/png", call())
    assert "ai.vision.user" in str(refused.value)
    assert "secret-token" not in str(refused.value)


@respx.mock
async def test_400_is_the_documents_fault_with_visions_message() -> None:
    respx.post(f"{URL}/recognizeText").mock(
        return_value=httpx.Response(400, json={"code": 3, "message": "image is too large"})
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(OcrRefused, match="image is too large"):
            await client(http).recognize(b"x", "image/png", call())


@respx.mock
async def test_failing_on_every_attempt_is_transient() -> None:
    respx.post(f"{URL}/recognizeText").mock(return_value=httpx.Response(500))
    async with httpx.AsyncClient() as http:
        with pytest.raises(OcrError, match="after 2 attempts: HTTP 500"):
            await client(http, attempts=2).recognize(b"x", "image/png", call())


@respx.mock
async def test_no_request_starts_after_the_deadline() -> None:
    route = respx.post(f"{URL}/recognizeText").mock(return_value=httpx.Response(200, json=page("x")))
    async with httpx.AsyncClient() as http:
        with pytest.raises(OutOfTime):
            await client(http).recognize(b"x", "image/png", call(seconds=-1))
    assert not route.called


@respx.mock
async def test_an_async_recognition_start_poll_and_results() -> None:
    start = respx.post(f"{URL}/recognizeTextAsync").mock(
        return_value=httpx.Response(200, json={"id": "op-1", "done": False})
    )
    respx.get(f"{OPERATIONS}/op-1").mock(
        side_effect=[
            httpx.Response(200, json={"id": "op-1", "done": False}),
            httpx.Response(200, json={"id": "op-1", "done": True, "response": {}}),
        ]
    )
    lines = "\n".join(json.dumps(page(f"page {n}", n)) for n in range(3))
    respx.get(f"{URL}/getRecognition", params={"operationId": "op-1"}).mock(
        side_effect=[
            httpx.Response(404, json={"code": 5, "message": "not ready"}),
            httpx.Response(200, text=lines),
        ]
    )
    ocr = call()
    async with httpx.AsyncClient() as http:
        ocr_client = client(http)
        assert await ocr_client.start(b"%PDF", 3, ocr) == "op-1"
        assert not (await ocr_client.state("op-1", ocr)).done  # type: ignore[union-attr]
        assert (await ocr_client.state("op-1", ocr)).done  # type: ignore[union-attr]
        assert await ocr_client.results("op-1", ocr) is None  # not readable yet
        pages = await ocr_client.results("op-1", ocr)
    assert json.loads(start.calls.last.request.content)["mimeType"] == "application/pdf"
    assert [(p.page, p.text) for p in pages or []] == [(0, "page 0"), (1, "page 1"), (2, "page 2")]
    # Polls are not recognitions; each result read is a request against the quota.
    assert (ocr.usage.pages, ocr.usage.requests) == (3, 3)


@respx.mock
async def test_a_failed_or_unknown_operation_is_told() -> None:
    respx.get(f"{OPERATIONS}/op-bad").mock(
        return_value=httpx.Response(
            200, json={"id": "op-bad", "done": True, "error": {"code": 3, "message": "bad page"}}
        )
    )
    respx.get(f"{OPERATIONS}/op-gone").mock(
        return_value=httpx.Response(404, json={"code": 5, "message": "x"})
    )
    async with httpx.AsyncClient() as http:
        ocr_client = client(http)
        failed = await ocr_client.state("op-bad", call())
        gone = await ocr_client.state("op-gone", call())
    assert failed is not None
    assert (failed.done, failed.error, failed.error_code) == (True, "bad page", 3)
    assert gone is None


async def test_a_request_of_n_pages_takes_n_slots_of_the_pace() -> None:
    """Vision counts each PDF page as one recognition: after a 10-page request at 5 a second, the
    next request waits about 2 s."""
    times: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(time.monotonic())
        if request.url.path.endswith("recognizeTextAsync"):
            return httpx.Response(200, json={"id": "op", "done": False})
        return httpx.Response(200, json=page("x"))

    transport = httpx.MockTransport(answer)
    async with httpx.AsyncClient(transport=transport) as http:
        ocr_client = client(http, rps=5.0)
        await ocr_client.start(b"%PDF", 10, call())
        await ocr_client.recognize(b"x", "image/png", call())
    assert times[1] - times[0] >= 1.7


def test_both_spellings_of_a_page_are_read() -> None:
    assert page_text(page("Счёт", 4, snake=True), "page").text == "Счёт"
    assert page_text(page("Счёт", 4), "page").page == 4
    body = b'{"result": {"textAnnotation": {"fullText": "a"}, "page": "0"}}\n\n{"result": {"page": "1"}}\n'
    assert [(p.page, p.text) for p in result_pages(body, "page")] == [(0, "a"), (1, "")]
