"""POST /v1/embeddings: OpenAI-compatible embeddings of a string or a list of strings.

A `dimensions` other than EMBEDDINGS_DIMENSIONS goes to the API, and a model that cannot honour it
is a 400, never silently ignored.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.errors import EmbeddingsModelError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.messages import Text
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.text_safety import encodable
from handlers.http.replies import REPLY_LIMIT_BYTES, HttpError, Reply
from handlers.http.requests import Request
from handlers.validation import invalid_input

_JSON_FLOAT_BYTES = 22  # a float as JSON text, with its comma: the reply-size estimate


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send `user`...

    input: str | list[str]
    model: Text | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(strict=True, gt=0)] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        """Each text checked here, so that an error names its index."""
        if isinstance(value, str):
            return _text(value, "input")
        if not isinstance(value, list):
            raise invalid_input("input must be a string or a list of strings")
        if not value:
            raise invalid_input("input must not be empty: send at least one text")
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise invalid_input(f"input[{index}] must be a string (token arrays are not supported)")
            _text(text, f"input[{index}]")
        return value


def _text(text: str, where: str) -> str:
    if not text.strip():
        raise invalid_input(f"{where} is empty")
    try:
        return encodable(text)
    except ValueError as exc:
        raise invalid_input(f"{where} is {exc}") from None


async def create_embeddings(runtime: Runtime, request: Request, context: Any) -> Reply:
    settings = runtime.settings
    body = EmbeddingsRequest.model_validate(request.json())
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.http_max_inputs:
        raise HttpError(413, f"at most {settings.http_max_inputs} inputs per request", "too_many_inputs")
    # The configured length needs no parameter: the API gives it anyway, and not every model takes one.
    dimensions = None if body.dimensions == settings.embeddings_dimensions else body.dimensions
    per_vector = (dimensions or settings.embeddings_dimensions) * (
        _JSON_FLOAT_BYTES if body.encoding_format == "float" else 6
    )
    if per_vector * len(texts) > REPLY_LIMIT_BYTES:
        raise HttpError(
            413, "the reply would exceed API Gateway's 2.5 MB limit: send fewer inputs", "reply_too_large"
        )
    model = settings.resolve_model(body.model)
    try:
        async with runtime.invocation(context, "http") as invocation:
            vectors = await _embed_unique(invocation, texts, model, dimensions)
    except EmbeddingsModelError:
        if model in (settings.document_model_uri, settings.query_model_uri):
            raise  # the function's own setting: a 502, and the client logged why
        message = f"model {model} is unknown to the embeddings API, or refuses every text"
        raise HttpError(404, message, "model_not_found") from None
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vectors[text], body.encoding_format)}
        for index, text in enumerate(texts)
    ]
    # What was paid: one request per distinct text, whatever the repeats.
    tokens = sum(embedding.tokens for embedding in vectors.values())
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def _embed_unique(
    invocation: Invocation, texts: list[str], model: str, dimensions: int | None
) -> dict[str, Embedding]:
    """One API request per distinct text, all under the instance's rate limiter; the first failure wins."""
    unique = list(dict.fromkeys(texts))

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                text: group.create_task(
                    invocation.embedder.embed_text(text, model, dimensions=dimensions, interactive=True)
                )
                for text in unique
            }
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return {text: task.result() for text, task in tasks.items()}


def _encode(embedding: Embedding, encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return embedding.vector.tolist()
    # Little-endian float32, as OpenAI's clients decode it (Yandex itself offers no base64).
    return base64.b64encode(struct.pack(f"<{len(embedding.vector)}f", *embedding.vector)).decode()
