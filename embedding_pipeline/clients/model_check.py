"""Does this model (with the dimensions asked of it) embed texts, and with which vector length?

One question, asked of the API by embedding CANARY_TEXT, a tiny known-good text, with the same
model and dimensions: paced and counted like any request (a 429 is sent again at its next slot, as a
text's is). Its answer is a verdict, kept CANARY_TTL_S per (model, dimensions), at most
_KEPT_MODELS of them (HTTP callers may name any model), and asked by one caller at a time, so that a
flood of texts costs one canary, not one each. Two things ask it:

- an ambiguous 400/422 (embeddings_refusals.py): refused too, every text would be; embedded with the
  expected length, the text was at fault;
- a model's first answer (in this instance) of another length than expected: the canary of the
  expected length says that text's answer was garbage (retried); of another length too, every text's
  would be (a wrong EMBEDDINGS_DIMENSIONS): that is known after two requests, and the texts that
  waited fail without one until the verdict expires. One garbled first answer never stops an
  instance for CANARY_TTL_S.

Until a model has answered once with the expected length, its texts go one at a time (`turn`), so a
wrong length is found by two requests rather than one per request in flight. Once it has, another
length is garbage for that text alone, and a canary's answer of another length is the canary's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import TypeVar

import httpx

from embedding_pipeline.clients.embeddings_replies import Embedding, error_message, read_embedding
from embedding_pipeline.clients.embeddings_requests import EmbeddingRequest, RequestSender
from embedding_pipeline.errors import (
    DimensionsNotSupported,
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsModelError,
    PipelineError,
)
from embedding_pipeline.logs import get_logger

CANARY_TEXT = "ping"
# How long a verdict holds. A setting changes only with a new function version (a new instance, with
# no verdicts); what it guards against is a canary per text in a flood of bad texts.
CANARY_TTL_S = 300.0
_KEPT_MODELS = 64

log = get_logger()
Model = tuple[str, int | None]  # EmbeddingRequest.answers: the model, and the length asked of it
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What embedding CANARY_TEXT told of a model: refused (`refusal`), or embedded `length` long."""

    refusal: str | None  # the API's words ("400: ..."): it embeds no text with this model
    # The length it embeds with: the canary's, or a first answer's that the canary's confirmed as
    # the model's (both of another length than expected); 0 when the canary was refused.
    length: int
    expires_at: float


class ModelCheck:
    """One per client: its verdicts, and the models that have answered, span warm invocations."""

    def __init__(
        self,
        sender: RequestSender,
        *,
        dimensions: int,
        max_sends: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sender = sender
        self._dimensions = dimensions
        self._max_sends = max_sends  # a canary throttled this many times is a failed check
        self._clock = clock
        self._verdicts: dict[Model, Verdict] = {}
        self._asking = asyncio.Lock()  # one canary at a time: the others wait for its verdict
        # Not a verdict: the models whose texts need no longer go one at a time (`turn`).
        self._answered: dict[Model, None] = {}
        self._first_answer = asyncio.Lock()

    def expected(self, request: EmbeddingRequest) -> int:
        """The vector length this request's answer must have."""
        return request.dimensions or self._dimensions

    @asynccontextmanager
    async def turn(self, request: EmbeddingRequest) -> AsyncIterator[None]:
        """A text's turn to be sent: at once when its model has answered with the expected length;
        else one at a time, and not at all while its model is known to answer with another."""
        if request.answers in self._answered:
            yield
            return
        async with self._first_answer:
            if request.answers not in self._answered:
                known = self._verdicts.get(request.answers)
                if known is not None and self._fresh(known) and self._embeds_other_length(request, known):
                    raise self.wrong_length(request, known.length)
                yield
                return
        yield

    async def accept(self, request: EmbeddingRequest, response: httpx.Response) -> Embedding | str:
        """The vector of a 200; a description of a failure worth retrying when it has another length
        than the model's other answers have; raised when the canary's has too."""
        embedding = read_embedding(response)
        request.usage.tokens += embedding.tokens  # billed, whatever is done with the vector next
        length, expected = len(embedding.vector), self.expected(request)
        if length == expected:
            _keep(self._answered, request.answers, None)
            return embedding
        # Not led by the number: a failure that starts "429" is counted as a rate limit.
        garbled = f"a vector of {length} dimensions where it answers other texts with {expected}"
        if request.answers in self._answered:
            return garbled
        why = "a vector of another length came back"
        verdict = await self.verdict(request, why=why)
        if verdict.refusal is not None:
            raise EmbeddingsError(f"{why} and a check failed: {verdict.refusal}")
        if not self._embeds_other_length(request, verdict):
            return garbled  # this text's answer, not the model's
        # The first answer's length is kept as the model's, so the texts that wait fail in its words.
        _keep(self._verdicts, request.answers, replace(verdict, length=length))
        log.error("embeddings_wrong_length", model=request.model, dimensions=length, expected=expected)
        raise self.wrong_length(request, length)

    async def verdict(self, request: EmbeddingRequest, *, why: str) -> Verdict:
        """The canary's verdict on this model, asked now unless one holds. `why` the check was
        made goes into the error if it fails (then nothing is kept, and the next asks again)."""
        async with self._asking:
            known = self._verdicts.get(request.answers)
            if known is not None and self._fresh(known):
                return known
            verdict = await self._ask(request, why)
            _keep(self._verdicts, request.answers, verdict)
            return verdict

    def wrong_length(self, request: EmbeddingRequest, length: int) -> PipelineError:
        """What every text gets from a model that answers with `length` where another was expected."""
        if request.dimensions is None:
            return EmbeddingsModelError(
                f"model {request.model} returned {length} dimensions, "
                f"EMBEDDINGS_DIMENSIONS is {self._dimensions}"
            )
        if length == self._dimensions:  # the model ignored the parameter
            return DimensionsNotSupported(
                f"model {request.model} does not support dimensions={request.dimensions}: "
                f"it returned {length}-dimensional vectors"
            )
        return EmbeddingsError(
            f"embeddings API returned {length} dimensions, {request.dimensions} were asked for"
        )

    async def _ask(self, request: EmbeddingRequest, why: str) -> Verdict:
        failure = "no answer"
        for _ in range(self._max_sends):
            answer = await self._sender.send(request, CANARY_TEXT)
            if isinstance(answer, str):
                failure = answer
                break
            status = answer.status_code
            if status == 200:
                return self._embedded(request, answer, why)
            message = error_message(answer)
            if status in (400, 404, 422):
                refusal = f"{status}: {message}"
                if request.dimensions is None:
                    log.error(
                        "embeddings_model_refused", model=request.model, reason=refusal, canary=CANARY_TEXT
                    )
                return Verdict(refusal, 0, self._clock() + CANARY_TTL_S)
            if status in (401, 403):
                raise EmbeddingsAuthError(f"embeddings API answered {status}: {message}")
            failure = f"{status} {message}"
            if status != 429:
                break
        raise EmbeddingsError(f"{why} and a check failed: {failure}")

    def _embedded(self, request: EmbeddingRequest, response: httpx.Response, why: str) -> Verdict:
        """The canary's own answer tells its length: no second canary checks the first."""
        embedding = read_embedding(response)
        request.usage.tokens += embedding.tokens
        length, expected = len(embedding.vector), self.expected(request)
        if length == expected:
            _keep(self._answered, request.answers, None)
        elif request.answers in self._answered:  # garbage in the canary's answer, not the model's
            raise EmbeddingsError(
                f"{why} and a check failed: a vector of {length} dimensions "
                f"where it answers other texts with {expected}"
            )
        return Verdict(None, length, self._clock() + CANARY_TTL_S)

    def _fresh(self, verdict: Verdict) -> bool:
        return verdict.expires_at > self._clock()

    def _embeds_other_length(self, request: EmbeddingRequest, verdict: Verdict) -> bool:
        """The canary was embedded, with another length than this request's answer must have."""
        return verdict.refusal is None and verdict.length != self.expected(request)


def _keep(store: dict[Model, T], key: Model, value: T) -> None:
    """Kept per model, at most _KEPT_MODELS of them, the oldest dropped first."""
    if key not in store and len(store) >= _KEPT_MODELS:
        store.pop(next(iter(store)))
    store[key] = value
