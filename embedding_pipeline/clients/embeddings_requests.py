"""One request to the embeddings API: paced, bounded, and never outliving the invocation.

Every request, a text's or the canary's (model_check.py), goes through `RequestSender.send`: it waits
for a slot of the instance-wide RateLimiter (paced with the other instances, clients/pacing.py) under
a concurrency bound, and tells the pacer how the API answered (a 429 slows it). Its timeout is the
smaller of EMBEDDINGS_TIMEOUT_S and the time left before the deadline (which already keeps
DEADLINE_MARGIN_S in hand); one cut off by the deadline, or that could not start before it, is
OutOfTime (resume later). Whatever httpx raises is caught here and described, to be retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import OutOfTime

# A 429 is no failure of the request: the pacer slows for it (clients/pacing.py), and a bulk request
# waits only for its next slot. 429s count against this many times EMBEDDINGS_MAX_ATTEMPTS, so a
# quota that never lets anything through still ends in an error.
REFUSALS_PER_ATTEMPT = 8
_DEADLINE_SLACK_S = 0.05  # a timeout this close to the deadline was the deadline's
_CONNECT_TIMEOUT_S = 5.0

DATA_LOGGING = "x-data-logging-enabled"  # the header AI Studio reads (also Vision OCR's)


@dataclass(slots=True)
class EmbeddingsUsage:
    """What one invocation asked of the API; summed for the summary line and the manifest."""

    requests: int = 0
    tokens: int = 0
    throttled: int = 0
    retries: int = 0


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """One text's request: what is sent, and what the answer is checked against."""

    model: str
    authorization: str
    dimensions: int | None  # asked for explicitly (passed through), else None
    usage: EmbeddingsUsage
    deadline: Deadline | None

    @property
    def answers(self) -> tuple[str, int | None]:
        """What the answers' length depends on: the model, and the length asked of it."""
        return self.model, self.dimensions

    def body(self, text: str) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "input": text, "encoding_format": "float"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        return body


class RequestSender:
    """One per client: its pool, rate limiter and concurrency bound span warm invocations."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        limiter: RateLimiter,
        concurrency: int,
        timeout_s: float,
        data_logging: bool = False,
    ) -> None:
        self._http = http
        self._url = url
        # AI Studio logs every request's data unless told not to (README, "Privacy"): the documents
        # are the customer's, so every request says so unless YC_DATA_LOGGING asks for the logs.
        self._logging = "true" if data_logging else "false"
        self.limiter = limiter
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout_s = timeout_s

    async def send(self, request: EmbeddingRequest, text: str) -> httpx.Response | str:
        """One request: the answer, or a description of a failure worth retrying. Counted in the
        invocation's usage; a 429 is counted as throttled and slows the pacer, any 200 tells it the
        quota let the request through."""
        answer = await self._send(request, text)
        if isinstance(answer, httpx.Response) and answer.status_code == 200:
            self.limiter.answered(refused=False)
        elif isinstance(answer, httpx.Response) and answer.status_code == 429:
            request.usage.throttled += 1
            self.limiter.answered(refused=True)
        return answer

    async def _send(self, request: EmbeddingRequest, text: str) -> httpx.Response | str:
        deadline = request.deadline
        if deadline is not None and deadline.expired():
            raise OutOfTime("the invocation's time budget ran out while embeddings were requested")
        async with self._slots:
            # Queued requests may wait long for their turn: none may start after the deadline.
            if not await self.limiter.acquire(within=deadline.remaining() if deadline else None):
                raise OutOfTime("no request slot before the invocation's deadline")
            budget = self._timeout_s if deadline is None else min(self._timeout_s, deadline.remaining())
            if budget <= 0:
                raise OutOfTime("the invocation's time budget ran out while embeddings were requested")
            request.usage.requests += 1
            try:
                async with asyncio.timeout(budget):
                    return await self._http.post(
                        self._url,
                        json=request.body(text),
                        headers={"Authorization": request.authorization, DATA_LOGGING: self._logging},
                        timeout=httpx.Timeout(budget, connect=min(budget, _CONNECT_TIMEOUT_S)),
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                if deadline is not None and deadline.remaining() <= _DEADLINE_SLACK_S:
                    raise OutOfTime(
                        "an embeddings request was cut off at the invocation's deadline"
                    ) from None
                return f"{type(exc).__name__} calling the embeddings API"
            except HTTPX_ERRORS as exc:  # dropped connections, broken Content-Encoding, a bad URL, ...
                return f"{type(exc).__name__} calling the embeddings API"
