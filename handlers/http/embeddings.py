"""POST /v1/embeddings: OpenAI-compatible embeddings of a string or a list of strings.

A `dimensions` other than EMBEDDINGS_DIMENSIONS goes to the API, and a model that cannot honour it
is a 400, never silently ignored. A batch of up to HTTP_MAX_INPUTS (OpenAI's 2,048) is embedded one
distinct text per request at the instance's pace, if the reply and the time left can hold it
(batch_limits.py). Token ids (what LangChain's OpenAIEmbeddings sends by default) are refused with
the setting that sends text instead: decoding them needs the client's tokenizer, whose vocabulary
the function neither ships nor may download.
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
from handlers.http.batch_limits import FEWER_INPUTS, check_reply_size, check_time
from handlers.http.replies import HttpError, Reply
from handlers.http.requests import Request
from handlers.validation import invalid_input

SEND_TEXTS_NOT_IDS = (
    "{where} is a list of token ids: this API embeds text and cannot turn token ids back into text "
    "(that takes the client's tokenizer). Send the texts as strings: LangChain's OpenAIEmbeddings "
    "sends token ids unless it is built with check_embedding_ctx_length=False"
)


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
                raise invalid_input(f"input[{index}] must be a string")
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
    raw = request.json()
    _refuse_token_ids(raw)
    body = EmbeddingsRequest.model_validate(raw)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.http_max_inputs:
        raise HttpError(
            413,
            f"at most {settings.http_max_inputs} inputs per request (HTTP_MAX_INPUTS): "
            + FEWER_INPUTS.format(fit=settings.http_max_inputs),
            "too_many_inputs",
        )
    # The configured length needs no parameter: the API gives it anyway, and not every model takes one.
    dimensions = None if body.dimensions == settings.embeddings_dimensions else body.dimensions
    check_reply_size(len(texts), dimensions or settings.embeddings_dimensions, body.encoding_format)
    model = settings.resolve_model(body.model)
    try:
        async with runtime.invocation(context, "http") as invocation:
            unique = list(dict.fromkeys(texts))
            limiter = runtime.embeddings.limiter
            # Held by the quota's other sharers (rate 0) it still gets slots: the configured pace then.
            check_time(len(unique), limiter.rate or limiter.quota, invocation.deadline.remaining())
            vectors = await _embed_unique(invocation, unique, model, dimensions)
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


def _refuse_token_ids(raw: object) -> None:
    """`input` as OpenAI's token arrays (a list of integers, or a list of them): a 400 naming the
    client setting that sends text instead."""
    value = raw.get("input") if isinstance(raw, dict) else None
    if not isinstance(value, list) or not value:
        return
    if all(_token_id(item) for item in value):
        raise HttpError(400, SEND_TEXTS_NOT_IDS.format(where="input"), "token_ids_not_supported")
    for index, item in enumerate(value):
        if isinstance(item, list) and item and all(_token_id(token) for token in item):
            where = f"input[{index}]"
            raise HttpError(400, SEND_TEXTS_NOT_IDS.format(where=where), "token_ids_not_supported")


def _token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def _embed_unique(
    invocation: Invocation, unique: list[str], model: str, dimensions: int | None
) -> dict[str, Embedding]:
    """One API request per distinct text, all under the instance's rate limiter, which paces them;
    the first failure wins."""
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
