"""Client of an OpenAI-compatible embeddings endpoint (Yandex AI Studio by default).

Yandex takes one text per request and caps requests per second. `EmbeddingsClient.embed` makes one
text's attempts, here, until it has a vector or an error; three modules do the rest:

- embeddings_requests.py sends each request through the instance-wide RateLimiter (paced with the
  other instances, clients/pacing.py) and a concurrency bound. No request outlives the invocation: its
  timeout is the smaller of EMBEDDINGS_TIMEOUT_S and the time left before the deadline (which already
  keeps DEADLINE_MARGIN_S in hand), and one cut off by the deadline is OutOfTime (resume later), not
  a retry. No httpx exception leaves it (clients/http_failures.py names them).
- embeddings_refusals.py says what a refusal means (embeddings_replies.py knows the wording);
- model_check.py answers one question: does this model (with the dimensions asked of it) embed texts,
  and with which vector length? A tiny known-good text, the canary, is embedded once with the same
  model, and its verdict kept CANARY_TTL_S per model, so a flood of texts costs one canary.

A 429 slows the pacer and the request goes again at its next slot (an interactive one after tens of
milliseconds); 5xx, timeouts, dropped connections and undecodable answers are retried with jittered
exponential backoff (clients/retry.py).

What a refusal means:
- too long (Yandex's or OpenAI's words, or 413): InputTooLong, so the caller splits the text;
- 401/403: EmbeddingsAuthError; 404 or a known "bad model" answer: EmbeddingsModelError;
- any other 400/422 is ambiguous (this text, or every text?), so the model check settles it. The
  canary refused too: EmbeddingsModelError (a setting), or DimensionsNotSupported when the caller
  asked for `dimensions`; embedded: EmbeddingsRejected (this text).

What a vector of another length than expected means depends on what the model answered before:
- until a model has answered once with the expected length (in this instance), its texts go one at a
  time; if that first answer has another length, the model check is asked: the canary of the expected
  length says the first answer was that text's garbage (below); of another length too, every text's
  would be (a wrong EMBEDDINGS_DIMENSIONS), so it is EmbeddingsModelError, known after two requests
  rather than one per request in flight, and the verdict is kept: the texts that were waiting fail
  without a request. One garbled first answer never stops an instance for CANARY_TTL_S;
- once it has answered with the expected length, another length is garbage for this text alone:
  retried like a 5xx, then WrongVectorLength, which parks the document.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

import httpx

from embedding_pipeline.clients.embeddings_refusals import describe_or_raise
from embedding_pipeline.clients.embeddings_replies import Embedding
from embedding_pipeline.clients.embeddings_requests import (
    REFUSALS_PER_ATTEMPT,
    EmbeddingRequest,
    EmbeddingsUsage,
    RequestSender,
)
from embedding_pipeline.clients.model_check import CANARY_TEXT, CANARY_TTL_S, ModelCheck
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import EmbeddingsError, EmbeddingsRateLimited, OutOfTime, WrongVectorLength
from embedding_pipeline.logs import get_logger

__all__ = ["CANARY_TEXT", "CANARY_TTL_S", "Embedding", "EmbeddingsClient", "EmbeddingsUsage"]

_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 20.0
# An interactive request (the HTTP API) retries a 429 after this long plus up to as much again: a
# place in the quota's window frees every 1/quota seconds, and a caller is waiting.
_INTERACTIVE_RETRY_S = 0.03

log = get_logger()


class EmbeddingsClient:
    """One per instance, so the pool, the rate limiter and the model check span warm invocations."""

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
        clock: Callable[[], float] = time.monotonic,
        data_logging: bool = False,
    ) -> None:
        url = base_url.rstrip("/") + "/embeddings"
        self._sender = RequestSender(
            http,
            url,
            limiter=limiter,
            concurrency=concurrency,
            timeout_s=timeout_s,
            data_logging=data_logging,
        )
        self._check = ModelCheck(
            self._sender,
            dimensions=dimensions,
            max_sends=max_attempts * REFUSALS_PER_ATTEMPT,
            clock=clock,
        )
        self._max_attempts = max_attempts
        self._sleep = sleep
        self._jitter: Callable[[], float] = jitter

    @property
    def limiter(self) -> RateLimiter:
        return self._sender.limiter

    async def embed(
        self,
        text: str,
        *,
        model: str,
        authorization: str,
        usage: EmbeddingsUsage,
        deadline: Deadline | None = None,
        dimensions: int | None = None,
        interactive: bool = False,
    ) -> Embedding:
        """The text's vector. `dimensions` is sent only when given, and the vector must then have it.
        `interactive` requests (a caller waits) retry a 429 within tens of milliseconds."""
        request = EmbeddingRequest(model, authorization, dimensions, usage, deadline)
        async with self._check.turn(request):
            return await self._attempts(request, text, interactive=interactive)

    async def _attempts(self, request: EmbeddingRequest, text: str, *, interactive: bool) -> Embedding:
        deadline, usage = request.deadline, request.usage
        failures = refusals = 0
        while True:
            answer = await self._sender.send(request, text)
            wrong_length = False
            if isinstance(answer, str):
                failure = answer
            elif answer.status_code == 200:
                accepted = await self._check.accept(request, answer)
                if isinstance(accepted, Embedding):
                    return accepted
                failure, wrong_length = accepted, True
            else:
                failure = await describe_or_raise(request, answer, self._check)
            if failure.startswith("429"):
                refusals += 1
                if refusals >= self._max_attempts * REFUSALS_PER_ATTEMPT:
                    raise EmbeddingsRateLimited(
                        f"embeddings quota exhausted after {refusals} 429s: {failure}"
                    )
                delay = _INTERACTIVE_RETRY_S * (1 + self._jitter()) if interactive else 0.0
            else:
                failures += 1
                if failures >= self._max_attempts and wrong_length:
                    raise WrongVectorLength(
                        f"model {request.model} answered this text with {failure}, "
                        f"{self._max_attempts} attempts in a row"
                    )
                if failures >= self._max_attempts:
                    raise EmbeddingsError(
                        f"embeddings API failed after {self._max_attempts} attempts: {failure}"
                    )
                delay = backoff_delay(
                    failures, base=_BACKOFF_BASE_S, cap=_BACKOFF_CAP_S, jitter=self._jitter()
                )
            if deadline is not None and delay >= deadline.remaining():
                raise OutOfTime("no time left to retry the embeddings API")
            usage.retries += 1
            log.info("embeddings_retry", attempt=failures + refusals, reason=failure, delay_s=round(delay, 3))
            if delay > 0:
                await self._sleep(delay)
