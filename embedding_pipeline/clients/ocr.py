"""Client of Yandex Vision OCR's REST API (`OCR_URL`, `https://ocr.api.cloud.yandex.net/ocr/v1`).

Four calls (docs/design.md, "OCR", has the API as we found it in Yandex's documentation):
- `recognize`: `POST /recognizeText`, an image or a one-page PDF, answered with its text at once;
- `start`: `POST /recognizeTextAsync`, a PDF of up to 200 pages, answered with an operation id;
- `state`: `GET {OCR_OPERATIONS_URL}/{id}`, whether the operation is done (or failed, or unknown);
- `results`: `GET /getRecognition?operationId=...`, the pages' texts once it is done.

Every request says `x-data-logging-enabled: false` (unless YC_DATA_LOGGING), as the embeddings
requests do, and `x-folder-id`. The recognitions are paced by the instance's OCR rate limiter
(OCR_RPS, shared with the other instances as the embeddings quota is: quota_share.py): each PDF page
counts as one recognition, so a request of n pages takes n slots. A 429 slows the pacer and goes
again at the next slot; 5xx, timeouts and dropped connections are retried with backoff (a
malformed answer is OcrError, transient); 401/403 is OcrAuthError (the role, a configuration
problem); a 400 is OcrRefused (the document's content). No request outlives the invocation's
deadline: OutOfTime instead.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.clients.ocr_replies import (
    MalformedReply,
    OperationState,
    PageText,
    error_message,
    operation_id,
    operation_state,
    page_text,
    result_pages,
)
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import OcrAuthError, OcrError, OcrRefused, OutOfTime

_T = TypeVar("_T")
DATA_LOGGING = "x-data-logging-enabled"
_CONNECT_TIMEOUT_S = 5.0
REFUSALS_PER_ATTEMPT = 8  # 429s a request may draw per attempt it has for failures


@dataclass(slots=True)
class OcrUsage:
    """What one invocation asked of Vision OCR."""

    requests: int = 0  # requests that count against the quota (recognitions and result reads)
    pages: int = 0  # pages sent for recognition: what is billed
    throttled: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class OcrCall:
    """Who asks, and how: one invocation's credentials and the recognition's settings."""

    authorization: str
    folder_id: str | None
    model: str
    languages: list[str]
    deadline: Deadline
    usage: OcrUsage = field(default_factory=OcrUsage)


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    url: str
    body: dict[str, Any] | None = None
    slots: int = 0  # recognitions it counts as (0: not against the quota)
    params: dict[str, str] | None = None
    absent_ok: bool = False  # a 404 answers None


class OcrClient:
    """One per instance: its pool and rate limiter span warm invocations."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        operations_url: str,
        limiter: RateLimiter,
        max_attempts: int = 8,
        timeout_s: float = 60.0,
        data_logging: bool = False,
    ) -> None:
        self._http = http
        self._url = url
        self._operations_url = operations_url
        self.limiter = limiter
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._logging = "true" if data_logging else "false"
        self._owed_until = 0.0  # time.monotonic() when the pages of earlier requests are paid off

    async def recognize(self, content: bytes, mime_type: str, call: OcrCall) -> PageText:
        """The text of an image, or of a one-page PDF, recognised at once."""
        body = _body(content, mime_type, call)
        answer = await self._request(_Request("POST", f"{self._url}/recognizeText", body, slots=1), call)
        call.usage.pages += 1
        return _decoded(lambda: page_text(answer.json(), call.model))

    async def start(self, pdf: bytes, pages: int, call: OcrCall) -> str:
        """Start recognising a PDF of `pages` pages (at most 200); its operation's id."""
        body = _body(pdf, "application/pdf", call)
        answer = await self._request(
            _Request("POST", f"{self._url}/recognizeTextAsync", body, slots=pages), call
        )
        call.usage.pages += pages
        return _decoded(lambda: operation_id(answer.json()))

    async def state(self, operation: str, call: OcrCall) -> OperationState | None:
        """The operation's state; None when the API no longer knows it (results are kept 3 days)."""
        request = _Request("GET", f"{self._operations_url}/{operation}", absent_ok=True)
        answer = await self._request(request, call)
        if answer is None:
            return None
        return _decoded(lambda: operation_state(answer.json()))

    async def results(self, operation: str, call: OcrCall) -> list[PageText] | None:
        """The pages of a finished operation; None if they are not ready (or no longer kept)."""
        request = _Request(
            "GET", f"{self._url}/getRecognition", slots=1, params={"operationId": operation}, absent_ok=True
        )
        answer = await self._request(request, call)
        if answer is None:
            return None
        return _decoded(lambda: result_pages(answer.content, call.model))

    async def _request(self, request: _Request, call: OcrCall) -> Any:
        """The 200 answer (None for a 404 when `absent_ok`); raises as the module docstring says."""
        problem, failures, refusals = "no answer", 0, 0
        while failures < self._max_attempts and refusals < self._max_attempts * REFUSALS_PER_ATTEMPT:
            if failures or refusals:
                call.usage.retries += 1
            answer = await self._send(request, call)
            if isinstance(answer, str):
                problem = answer
            elif answer.status_code == 200:
                if request.slots:
                    self.limiter.answered(refused=False)
                    self._owe(request.slots - 1)
                return answer
            elif answer.status_code == 429:
                # Sent again at the pacer's next slot, which the 429 has pushed back: 429s count
                # against many more attempts than failures, so a quota that never lets one through
                # still ends in an error (or the deadline comes first: a hand-over).
                call.usage.throttled += 1
                self.limiter.answered(refused=True)
                problem, refusals = "429 (quota)", refusals + 1
                continue
            elif answer.status_code == 404 and request.absent_ok:
                return None
            elif answer.status_code in (401, 403):
                raise OcrAuthError(
                    f"Vision OCR answered {answer.status_code}: {error_message(answer.content)} "
                    "(the function's service account needs the role ai.vision.user)"
                )
            elif 400 <= answer.status_code < 500:
                raise OcrRefused(f"Vision OCR refused it: {error_message(answer.content)}")
            else:
                problem = f"HTTP {answer.status_code}"
            failures += 1
            delay = backoff_delay(failures, base=0.5, cap=8.0)
            if call.deadline.remaining() <= delay:
                raise OutOfTime(f"Vision OCR failing ({problem}) at the invocation's deadline")
            await asyncio.sleep(delay)
        raise OcrError(f"Vision OCR still failing after {failures + refusals} attempts: {problem}")

    async def _send(self, request: _Request, call: OcrCall) -> httpx.Response | str:
        deadline = call.deadline
        if request.slots:
            await self._wait_for_owed(deadline)
            if not await self.limiter.acquire(within=deadline.remaining()):
                raise OutOfTime("no Vision OCR request slot before the invocation's deadline")
        budget = min(self._timeout_s, deadline.remaining())
        if budget <= 0:
            raise OutOfTime("the invocation's time budget ran out while Vision OCR was asked")
        if request.slots:
            call.usage.requests += 1
        headers = {"Authorization": call.authorization, DATA_LOGGING: self._logging}
        if call.folder_id:
            headers["x-folder-id"] = call.folder_id
        try:
            async with asyncio.timeout(budget):
                return await self._http.request(
                    request.method,
                    request.url,
                    json=request.body,
                    params=request.params,
                    headers=headers,
                    timeout=httpx.Timeout(budget, connect=min(budget, _CONNECT_TIMEOUT_S)),
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            if deadline.remaining() <= 1.0:
                raise OutOfTime("a Vision OCR request was cut off at the invocation's deadline") from None
            return f"{type(exc).__name__} calling Vision OCR"
        except HTTPX_ERRORS as exc:
            return f"{type(exc).__name__} calling Vision OCR"

    def _owe(self, recognitions: int) -> None:
        """A request of several pages counts as that many recognitions: the next request that counts
        waits until the pace has paid them off. Owed as a time, not as slots taken one by one, so an
        operation that is waited for meanwhile pays its own debt (and is written down at once)."""
        if recognitions > 0:
            start = max(time.monotonic(), self._owed_until)
            self._owed_until = start + recognitions / self.limiter.share

    async def _wait_for_owed(self, deadline: Deadline) -> None:
        wait = self._owed_until - time.monotonic()
        if wait <= 0:
            return
        if wait >= deadline.remaining():
            raise OutOfTime("Vision OCR's quota is paid off after the invocation's deadline")
        await asyncio.sleep(wait)


def _body(content: bytes, mime_type: str, call: OcrCall) -> dict[str, Any]:
    return {
        "mimeType": mime_type,
        "languageCodes": call.languages,
        "model": call.model,
        "content": base64.b64encode(content).decode("ascii"),
    }


def _decoded(read: Callable[[], _T]) -> _T:
    """The reply read by `read`; a malformed one is OcrError (transient: the delivery comes again)."""
    try:
        return read()
    except (MalformedReply, ValueError) as exc:
        raise OcrError(f"Vision OCR answered something unexpected: {exc}") from None
