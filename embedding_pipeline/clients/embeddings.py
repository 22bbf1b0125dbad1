"""Client of an OpenAI-compatible embeddings endpoint (Yandex AI Studio by default).

Yandex takes one text per request and caps requests per second, so every call goes through the
instance-wide RateLimiter (paced with the other instances, clients/pacing.py) and a concurrency
bound. A 429 slows the pacer and the request goes again at its next slot (an interactive one after
tens of milliseconds); 5xx, timeouts, dropped connections and undecodable answers are retried with
jittered exponential backoff (clients/retry.py). No httpx exception leaves this module.

No request outlives the invocation: its timeout is the smaller of EMBEDDINGS_TIMEOUT_S and the time
left before the deadline (which already keeps DEADLINE_MARGIN_S in hand), and one cut off by the
deadline is OutOfTime (resume later), not a retry.

What a refusal means (embeddings_replies.py knows the wording):
- too long (Yandex's or OpenAI's words, or 413): InputTooLong, so the caller splits the text;
- 401/403: EmbeddingsAuthError; 404 or a known "bad model" answer: EmbeddingsModelError;
- any other 400/422 is ambiguous (this text, or every text?), so a canary settles it: a tiny known
  good text is embedded once with the same model. Refused too: EmbeddingsModelError (a setting);
  accepted: EmbeddingsRejected (this text). The verdict is kept a while per model, so a flood of bad
  texts costs one canary, not one each.

What a vector of another length than expected means depends on what the model answered before:
- until a model has answered once with the expected length (in this instance), its texts go one at a
  time; if that first answer has another length, the canary is embedded once: of the expected length,
  the first answer was that text's garbage (below); of another length too, every text would be (a
  wrong EMBEDDINGS_DIMENSIONS), so it is EmbeddingsModelError, known after two requests rather than
  one per request in flight, and kept a while like a canary's verdict: the texts that were waiting
  fail without a request. One garbled first answer never stops an instance for CANARY_TTL_S;
- once it has answered with the expected length, another length is garbage for this text alone:
  retried like a 5xx, then WrongVectorLength, which parks the document.
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from embedding_pipeline.clients.embeddings_replies import (
    DIMENSIONS,
    MODEL_REFUSED,
    TOO_LONG,
    error_message,
    read_embedding,
)
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import (
    DimensionsNotSupported,
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsModelError,
    EmbeddingsRateLimited,
    EmbeddingsRejected,
    InputTooLong,
    OutOfTime,
    PipelineError,
    WrongVectorLength,
)
from embedding_pipeline.logs import get_logger

_BACKOFF_BASE_S = 0.25
_BACKOFF_CAP_S = 20.0
# A 429 is no failure of the request: the pacer slows for it (clients/pacing.py), and a bulk request
# waits only for its next slot. 429s count against this many times EMBEDDINGS_MAX_ATTEMPTS, so a
# quota that never lets anything through still ends in EmbeddingsRateLimited.
_REFUSALS_PER_ATTEMPT = 8
# An interactive request (the HTTP API) retries a 429 after this long plus up to as much again: a
# place in the quota's window frees every 1/quota seconds, and a caller is waiting.
_INTERACTIVE_RETRY_S = 0.03
CANARY_TEXT = "ping"
# How long a canary's verdict holds. A setting changes only with a new function version (a new
# instance, with no verdicts); what it guards against is a canary per text in a flood of bad texts.
CANARY_TTL_S = 300.0
_CANARY_MODELS = 64  # verdicts kept at most: HTTP callers may name any model
_DEADLINE_SLACK_S = 0.05  # a timeout this close to the deadline was the deadline's
# Everything httpx raises: its request errors, a URL it cannot build, a stream read twice, cookies.
_HTTPX_ERRORS = (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, httpx.CookieConflict)

log = get_logger()
T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class _Call:
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


@dataclass(frozen=True, slots=True)
class _Verdict:
    refusal: str | None  # the canary's refusal; None: the API embeds texts with this model
    expires_at: float


@dataclass(frozen=True, slots=True)
class _FirstAnswer:
    """A model's first answer had another length than expected: what every text gets meanwhile."""

    error: PipelineError
    expires_at: float

    def again(self) -> PipelineError:
        return type(self.error)(*self.error.args)


class EmbeddingsClient:
    """One per instance, so the pool, the rate limiter and the canary verdicts span warm invocations."""

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
    ) -> None:
        self._http = http
        self._url = base_url.rstrip("/") + "/embeddings"
        self._dimensions = dimensions
        self._limiter = limiter
        self._slots = asyncio.Semaphore(concurrency)
        self._max_attempts = max_attempts
        self._timeout_s = timeout_s
        self._sleep = sleep
        self._jitter: Callable[[], float] = jitter
        self._clock = clock
        self._verdicts: dict[tuple[str, int | None], _Verdict] = {}
        self._canary_lock = asyncio.Lock()  # one canary at a time: the others wait for its verdict
        # Models (and asked lengths) that have answered with the expected length; those whose first
        # answer had another one. Until one or the other is known, texts go one at a time.
        self._right_length: dict[tuple[str, int | None], None] = {}
        self._wrong_length: dict[tuple[str, int | None], _FirstAnswer] = {}
        self._first_answer = asyncio.Lock()

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

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
        call = _Call(model, authorization, dimensions, usage, deadline)
        if call.answers not in self._right_length:
            # Not one request per text in flight before a wrong length is known: the first goes alone.
            async with self._first_answer:
                if call.answers not in self._right_length:
                    self._raise_if_known_wrong(call)
                    return await self._embed(call, text, interactive=interactive)
        return await self._embed(call, text, interactive=interactive)

    async def _embed(self, call: _Call, text: str, *, interactive: bool) -> Embedding:
        deadline, usage = call.deadline, call.usage
        failures = refusals = 0
        while True:
            answer = await self._send(call, text)
            wrong_length = False
            if isinstance(answer, httpx.Response) and answer.status_code == 200:
                self._limiter.answered(refused=False)
                accepted = await self._accept(call, answer)
                if isinstance(accepted, Embedding):
                    return accepted
                failure, wrong_length = accepted, True
            elif isinstance(answer, httpx.Response):
                failure = await self._refusal(call, answer)
            else:
                failure = answer
            if failure.startswith("429"):
                refusals += 1
                if refusals >= self._max_attempts * _REFUSALS_PER_ATTEMPT:
                    raise EmbeddingsRateLimited(
                        f"embeddings quota exhausted after {refusals} 429s: {failure}"
                    )
                delay = _INTERACTIVE_RETRY_S * (1 + self._jitter()) if interactive else 0.0
            else:
                failures += 1
                if failures >= self._max_attempts and wrong_length:
                    raise WrongVectorLength(
                        f"model {call.model} answered this text with {failure}, "
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

    async def _send(self, call: _Call, text: str) -> httpx.Response | str:
        """One request: the answer, or a description of a failure worth retrying."""
        deadline = call.deadline
        if deadline is not None and deadline.expired():
            raise OutOfTime("the invocation's time budget ran out while embeddings were requested")
        async with self._slots:
            # Queued requests may wait long for their turn: none may start after the deadline.
            if not await self._limiter.acquire(within=deadline.remaining() if deadline else None):
                raise OutOfTime("no request slot before the invocation's deadline")
            budget = self._timeout_s if deadline is None else min(self._timeout_s, deadline.remaining())
            if budget <= 0:
                raise OutOfTime("the invocation's time budget ran out while embeddings were requested")
            call.usage.requests += 1
            try:
                async with asyncio.timeout(budget):
                    return await self._http.post(
                        self._url,
                        json=call.body(text),
                        headers={"Authorization": call.authorization},
                        timeout=httpx.Timeout(budget, connect=min(budget, 5.0)),
                    )
            except (TimeoutError, httpx.TimeoutException) as exc:
                if deadline is not None and deadline.remaining() <= _DEADLINE_SLACK_S:
                    raise OutOfTime(
                        "an embeddings request was cut off at the invocation's deadline"
                    ) from None
                return f"{type(exc).__name__} calling the embeddings API"
            except _HTTPX_ERRORS as exc:  # dropped connections, broken Content-Encoding, ...
                return f"{type(exc).__name__} calling the embeddings API"

    async def _accept(
        self, call: _Call, response: httpx.Response, *, of_canary: bool = False
    ) -> Embedding | str:
        """The vector of a 200; a description of a failure worth retrying when it has another length
        than the model's other answers have; raised when the canary has it too (`of_canary`: this
        is the canary's own answer, which tells without another)."""
        vector, tokens = read_embedding(response)
        call.usage.tokens += tokens  # billed, whatever is done with the vector next
        expected = call.dimensions or self._dimensions
        if len(vector) == expected:
            _remember(self._right_length, call.answers, None)
            return Embedding(vector, tokens)
        # Not led by the number: a failure that starts "429" is counted as a rate limit.
        garbled = f"a vector of {len(vector)} dimensions where it answers other texts with {expected}"
        if call.answers in self._right_length:
            return garbled
        if not of_canary and await self._canary_length(call) == expected:
            _remember(self._right_length, call.answers, None)  # this text's answer, not the model's
            return garbled
        error = self._wrong_first_length(call, len(vector))
        log.error("embeddings_wrong_length", model=call.model, dimensions=len(vector), expected=expected)
        _remember(self._wrong_length, call.answers, _FirstAnswer(error, self._clock() + CANARY_TTL_S))
        raise error

    async def _canary_length(self, call: _Call) -> int:
        """The length of CANARY_TEXT's vector, paced and counted like any request (a 429 is sent
        again at the next slot, as a text's is)."""
        failure = "no answer"
        for _ in range(self._max_attempts * _REFUSALS_PER_ATTEMPT):
            answer = await self._send(call, CANARY_TEXT)
            if isinstance(answer, str):
                failure = answer
                break
            if answer.status_code == 200:
                self._limiter.answered(refused=False)
                vector, tokens = read_embedding(answer)
                call.usage.tokens += tokens
                return len(vector)
            failure = f"{answer.status_code} {error_message(answer)}"
            if answer.status_code != 429:
                break
            call.usage.throttled += 1
            self._limiter.answered(refused=True)
        raise EmbeddingsError(f"a vector of another length came back and a check failed: {failure}")

    def _wrong_first_length(self, call: _Call, length: int) -> PipelineError:
        if call.dimensions is None:
            return EmbeddingsModelError(
                f"model {call.model} returned {length} dimensions, "
                f"EMBEDDINGS_DIMENSIONS is {self._dimensions}"
            )
        if length == self._dimensions:  # the model ignored the parameter
            return DimensionsNotSupported(
                f"model {call.model} does not support dimensions={call.dimensions}: "
                f"it returned {length}-dimensional vectors"
            )
        return EmbeddingsError(
            f"embeddings API returned {length} dimensions, {call.dimensions} were asked for"
        )

    def _raise_if_known_wrong(self, call: _Call) -> None:
        """The texts that waited behind a first answer of another length fail as it did, unsent."""
        known = self._wrong_length.get(call.answers)
        if known is None:
            return
        if known.expires_at > self._clock():
            raise known.again()
        del self._wrong_length[call.answers]

    async def _refusal(self, call: _Call, response: httpx.Response) -> str:
        """Raise for answers a retry cannot change; return a description of retryable ones."""
        status, message = response.status_code, error_message(response)
        if status == 429:
            call.usage.throttled += 1
            self._limiter.answered(refused=True)
            return f"429 {message}"
        if status >= 500 or status == 408:
            return f"{status} {message}"
        if status in (401, 403):
            raise EmbeddingsAuthError(
                f"embeddings API answered {status}: {message} (check the token or API key and the "
                "ai.languageModels.user role)"
            )
        if status == 413 or (status in (400, 422) and TOO_LONG.search(message)):
            raise InputTooLong(message)
        if status in (400, 422) and call.dimensions is not None and DIMENSIONS.search(message):
            raise DimensionsNotSupported(
                f"model {call.model} does not support dimensions={call.dimensions}: {message}"
            )
        if status == 404 or (status in (400, 422) and MODEL_REFUSED.search(message)):
            log.error("embeddings_model_refused", model=call.model, status=status, reason=message)
            raise EmbeddingsModelError(
                f"the embeddings API does not accept model {call.model} ({status}): {message} "
                "(check EMBEDDINGS_MODEL, YC_FOLDER_ID and EMBEDDINGS_URL)"
            )
        if status in (400, 422):
            raise await self._settle(call, status, message)
        raise EmbeddingsError(f"embeddings API answered {status}: {message}")

    async def _settle(self, call: _Call, status: int, message: str) -> Exception:
        """Whether a 400 is this text's fault or every text's: the error to raise."""
        refusal = await self._verdict(call, f"{status}: {message}")
        if refusal is None:
            log.warning("embeddings_text_rejected", model=call.model, status=status, reason=message)
            return EmbeddingsRejected(f"the embeddings API refused this text ({status}): {message}")
        if call.dimensions is not None:
            return DimensionsNotSupported(
                f"model {call.model} refuses every text with dimensions={call.dimensions}: {refusal}"
            )
        return EmbeddingsModelError(
            f"the embeddings API refuses every text with model {call.model}: {refusal}"
        )

    async def _verdict(self, call: _Call, refused: str) -> str | None:
        """The canary's refusal for this model, or None if it embeds a known-good text; cached."""
        key = (call.model, call.dimensions)
        async with self._canary_lock:
            verdict = self._verdicts.get(key)
            if verdict is not None and verdict.expires_at > self._clock():
                return verdict.refusal
            refusal = await self._canary(call, refused)
            if refusal is not None and call.dimensions is None:
                log.error("embeddings_model_refused", model=call.model, reason=refusal, canary=CANARY_TEXT)
            if len(self._verdicts) >= _CANARY_MODELS:
                self._verdicts.pop(next(iter(self._verdicts)))
            self._verdicts[key] = _Verdict(refusal, self._clock() + CANARY_TTL_S)
            return refusal

    async def _canary(self, call: _Call, refused: str) -> str | None:
        """Embed CANARY_TEXT once, paced and counted like any request."""
        answer = await self._send(call, CANARY_TEXT)
        if isinstance(answer, str):
            raise EmbeddingsError(
                f"the embeddings API refused a text ({refused}) and a check failed: {answer}"
            )
        status = answer.status_code
        if status == 200:
            self._limiter.answered(refused=False)
            if isinstance(failure := await self._accept(call, answer, of_canary=True), str):
                raise EmbeddingsError(
                    f"the embeddings API refused a text ({refused}) and a check failed: {failure}"
                )
            return None
        message = error_message(answer)
        if status in (400, 404, 422):
            return f"{status}: {message}"
        if status in (401, 403):
            raise EmbeddingsAuthError(f"embeddings API answered {status}: {message}")
        if status == 429:
            call.usage.throttled += 1
            self._limiter.answered(refused=True)
        raise EmbeddingsError(
            f"the embeddings API refused a text ({refused}) and a check failed: {status} {message}"
        )


def _remember(store: dict[tuple[str, int | None], T], key: tuple[str, int | None], value: T) -> None:
    """Kept per model, at most _CANARY_MODELS of them: HTTP callers may name any model."""
    if key not in store and len(store) >= _CANARY_MODELS:
        store.pop(next(iter(store)))
    store[key] = value
