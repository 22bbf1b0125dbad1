"""Client of an OpenAI-compatible embeddings endpoint (Yandex AI Studio by default).

Yandex takes one text per request and caps requests per second, so every call goes through the
instance-wide RateLimiter and a concurrency bound, and retries 429, 5xx, timeouts and dropped
connections with jittered exponential backoff (clients/retry.py). A 400 that says the text has too
many tokens becomes InputTooLong, so the caller can split the text and embed the parts.
"""

from __future__ import annotations

import asyncio
import random
import re
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import (
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsRateLimited,
    EmbeddingsRejected,
    InputTooLong,
    OutOfTime,
)
from embedding_pipeline.logs import get_logger, redact_text

_TOO_LONG = re.compile(r"token|too long|too large|exceed|length|limit", re.IGNORECASE)
_BACKOFF_BASE_S = 0.25
_BACKOFF_429_BASE_S = 1.0
_BACKOFF_CAP_S = 20.0

log = get_logger()


@dataclass(frozen=True, slots=True)
class Embedding:
    # float64, as the API sent them: records must be byte-identical across runs.
    vector: array[float]
    tokens: int


@dataclass(slots=True)
class EmbeddingsUsage:
    """What one invocation asked of the API; summed for the summary line and the manifest."""

    requests: int = 0
    tokens: int = 0
    throttled: int = 0
    retries: int = 0


class EmbeddingsClient:
    """One per instance, so the pool and the rate limiter span warm invocations."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        dimensions: int,
        limiter: RateLimiter,
        concurrency: int,
        max_attempts: int,
        timeout_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/embeddings"
        self._dimensions = dimensions
        self._limiter = limiter
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._sleep = sleep
        self._jitter: Callable[[], float] = jitter

    async def embed(
        self,
        text: str,
        *,
        model: str,
        authorization: str,
        usage: EmbeddingsUsage,
        deadline: Deadline | None = None,
    ) -> Embedding:
        body = {"model": model, "input": text, "encoding_format": "float"}
        headers = {"Authorization": authorization}
        failure = "no attempt made"
        for attempt in range(self._max_attempts):
            if deadline is not None and deadline.expired():
                raise OutOfTime("the invocation's time budget ran out while embedding")
            async with self._slots:
                # Queued requests may wait long for their turn: none may start after the deadline.
                if not await self._limiter.acquire(within=deadline.remaining() if deadline else None):
                    raise OutOfTime("no request slot before the invocation's deadline")
                usage.requests += 1
                try:
                    response = await self._http.post(
                        self._url, json=body, headers=headers, timeout=self._timeout
                    )
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    failure = f"{type(exc).__name__} calling the embeddings API"
                    response = None
            if response is not None:
                if response.status_code == 200:
                    self._limiter.succeeded()
                    return self._parse(response, usage)
                failure = self._classify(response, usage)
            if attempt == self._max_attempts - 1:
                break  # no retry follows the last attempt: nothing to wait for
            delay = self._backoff(attempt, throttled=response is not None and response.status_code == 429)
            if deadline is not None and delay >= deadline.remaining():
                raise OutOfTime("no time left to retry the embeddings API")
            usage.retries += 1
            log.info("embeddings_retry", attempt=attempt + 1, reason=failure, delay_s=round(delay, 3))
            await self._sleep(delay)
        if failure.startswith("429"):
            raise EmbeddingsRateLimited(
                f"embeddings quota exhausted after {self._max_attempts} attempts: {failure}"
            )
        raise EmbeddingsError(f"embeddings API failed after {self._max_attempts} attempts: {failure}")

    def _classify(self, response: httpx.Response, usage: EmbeddingsUsage) -> str:
        """Raise for answers a retry cannot change; return a description of retryable ones."""
        status = response.status_code
        message = _error_message(response)
        if status == 429:
            usage.throttled += 1
            self._limiter.throttled()
            return f"429 {message}"
        if status in (401, 403):
            raise EmbeddingsAuthError(
                f"embeddings API answered {status}: {message} (check the token or API key and the "
                "ai.languageModels.user role)"
            )
        if status == 413 or (status == 400 and _TOO_LONG.search(message)):
            raise InputTooLong(message)
        if status in {400, 422}:
            raise EmbeddingsRejected(f"embeddings API rejected the text: {message}")
        if status >= 500 or status == 408:
            return f"{status} {message}"
        raise EmbeddingsError(f"embeddings API answered {status}: {message}")

    def _parse(self, response: httpx.Response, usage: EmbeddingsUsage) -> Embedding:
        try:
            payload = response.json()
            vector = array("d", payload["data"][0]["embedding"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise EmbeddingsError("embeddings API answered 200 without an embedding") from None
        if len(vector) != self._dimensions:
            raise EmbeddingsError(
                f"embeddings API returned {len(vector)} dimensions, "
                f"EMBEDDINGS_DIMENSIONS is {self._dimensions}"
            )
        tokens = _usage_tokens(payload)
        usage.tokens += tokens
        return Embedding(vector, tokens)

    def _backoff(self, attempt: int, *, throttled: bool) -> float:
        # A 429 starts from a longer step: the quota is per second, so sooner retries are refused too.
        base = _BACKOFF_429_BASE_S if throttled else _BACKOFF_BASE_S
        return backoff_delay(attempt + 1, base=base, cap=_BACKOFF_CAP_S, jitter=self._jitter())


def _usage_tokens(payload: Any) -> int:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    if not isinstance(usage, dict):
        return 0
    for name in ("total_tokens", "prompt_tokens"):
        value = usage.get(name)
        if isinstance(value, int | str) and str(value).isdigit():
            return int(value)
    return 0


def _error_message(response: httpx.Response) -> str:
    """The API's own words, from OpenAI's or Yandex's error shape, cut short and redacted."""
    try:
        payload = response.json()
    except ValueError:
        return redact_text(response.text[:300])
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            message = error.get("message") or error.get("details") or error
            return redact_text(str(message)[:300])
        return redact_text(str(error)[:300])
    return redact_text(str(payload)[:300])
