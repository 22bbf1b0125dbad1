"""What the embeddings API's refusals mean, in the product's errors (embeddings_replies.py reads the
wording):

- 429, 408 and 5xx: worth another attempt (the client retries them);
- too long (Yandex's or OpenAI's words, or 413): InputTooLong, so the caller splits the text;
- 401/403: EmbeddingsAuthError; 404 or a known "bad model" answer: EmbeddingsModelError; a 400/422
  about `dimensions` the caller asked for: DimensionsNotSupported;
- any other 400/422 is ambiguous (this text, or every text?), so the model check (model_check.py)
  settles it: the canary refused too, it is EmbeddingsModelError (a setting) or DimensionsNotSupported
  (the caller's); embedded with the expected length, EmbeddingsRejected (this text).
"""

from __future__ import annotations

import httpx

from embedding_pipeline.clients.embeddings_replies import DIMENSIONS, MODEL_REFUSED, TOO_LONG, error_message
from embedding_pipeline.clients.embeddings_requests import EmbeddingRequest
from embedding_pipeline.clients.model_check import ModelCheck
from embedding_pipeline.errors import (
    DimensionsNotSupported,
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsModelError,
    EmbeddingsRejected,
    InputTooLong,
    PipelineError,
)
from embedding_pipeline.logs import get_logger

log = get_logger()


async def describe_or_raise(request: EmbeddingRequest, response: httpx.Response, check: ModelCheck) -> str:
    """Raise for answers a retry cannot change; return a description of retryable ones."""
    status, message = response.status_code, error_message(response)
    if status == 429 or status >= 500 or status == 408:
        return f"{status} {message}"
    if status in (401, 403):
        raise EmbeddingsAuthError(
            f"embeddings API answered {status}: {message} (check the token or API key and the "
            "ai.languageModels.user role)"
        )
    if status == 413 or (status in (400, 422) and TOO_LONG.search(message)):
        raise InputTooLong(message)
    if status in (400, 422) and request.dimensions is not None and DIMENSIONS.search(message):
        raise DimensionsNotSupported(
            f"model {request.model} does not support dimensions={request.dimensions}: {message}"
        )
    if status == 404 or (status in (400, 422) and MODEL_REFUSED.search(message)):
        log.error("embeddings_model_refused", model=request.model, status=status, reason=message)
        raise EmbeddingsModelError(
            f"the embeddings API does not accept model {request.model} ({status}): {message} "
            "(check EMBEDDINGS_MODEL, YC_FOLDER_ID and EMBEDDINGS_URL)"
        )
    if status in (400, 422):
        raise await _settle(request, status, message, check)
    raise EmbeddingsError(f"embeddings API answered {status}: {message}")


async def _settle(request: EmbeddingRequest, status: int, message: str, check: ModelCheck) -> PipelineError:
    """Whether a 400 is this text's fault or every text's: the error to raise."""
    verdict = await check.verdict(request, why=f"the embeddings API refused a text ({status}: {message})")
    if verdict.refusal is not None and request.dimensions is not None:
        return DimensionsNotSupported(
            f"model {request.model} refuses every text with dimensions={request.dimensions}: "
            f"{verdict.refusal}"
        )
    if verdict.refusal is not None:
        return EmbeddingsModelError(
            f"the embeddings API refuses every text with model {request.model}: {verdict.refusal}"
        )
    expected = check.expected(request)
    if verdict.length != expected:  # the canary's own answer tells: every text would have it
        log.error(
            "embeddings_wrong_length", model=request.model, dimensions=verdict.length, expected=expected
        )
        return check.wrong_length(request, verdict.length)
    log.warning("embeddings_text_rejected", model=request.model, status=status, reason=message)
    return EmbeddingsRejected(f"the embeddings API refused this text ({status}): {message}")
