"""POST /v1/search: {"query": ..., "top_k", "prefix", "filter", "mode", "score_threshold"}: the best
chunks from the vector index (VECTOR_DB_DSN) by vector, keyword or both (hybrid, the default); 501
when there is none. Keyword mode never calls the embeddings API.

The body is read strictly: what JSON or PostgreSQL cannot hold is the caller's error (400, the field
named), found before anything is paid for or sent to the index. Refused, in `query` and `prefix`:
- `\\u0000`: PostgreSQL's text and jsonb hold no NUL;
- a lone surrogate (`"\\ud800"`): it has no UTF-8 form.
`filter` is read by embedding_pipeline/vector_index/filters.py (operators, bounds, and the same
refusals, plus `NaN`, `Infinity` or `1e999`: the body is parsed with `Request.json(finite=True)`, which
leaves a `NotFinite` in their place).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from embedding_pipeline.runtime import Runtime
from embedding_pipeline.vector_index.filters import FilterError, parse_filter
from handlers.http.replies import REPLY_LIMIT_BYTES, HttpError, Reply
from handlers.http.requests import Request
from handlers.validation import invalid_input

QUERY_LIMIT = 8000  # characters
PREFIX_LIMIT = 1024  # characters: an object key's limit in bytes is 1024


class SearchRequest(BaseModel):
    # Forbidden, not ignored: a misspelt "topk" or "filters" would silently widen the search.
    model_config = ConfigDict(extra="forbid")

    query: str
    top_k: Annotated[int, Field(strict=True, gt=0)] = 10
    prefix: Annotated[str, Field(max_length=PREFIX_LIMIT)] | None = None
    filter: dict[str, Any] | None = None  # filters.py: equality, $gt… $in $exists $and $or
    mode: Literal["hybrid", "vector", "keyword"] = "hybrid"
    # Hits whose `score` is below are dropped: cosine (vector), text rank (keyword), RRF (hybrid).
    score_threshold: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @field_validator("query", mode="before")
    @classmethod
    def _query(cls, value: object) -> object:
        if not isinstance(value, str):
            raise invalid_input("query must be a string")
        if not value.strip():
            raise invalid_input("query is empty")
        if len(value) > QUERY_LIMIT:
            # About the embeddings API's 2,000 tokens, which would refuse it in the other modes; in
            # keyword mode every word of it would become a term of the full-text query.
            raise invalid_input(f"query: longer than {QUERY_LIMIT} characters")
        _check_text(value, "query")
        return value

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> object:
        if isinstance(value, str):
            _check_text(value, "prefix")
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _filter(cls, value: object) -> object:
        if value is None:
            return value
        try:
            parse_filter(value)  # read, bounded and checked here; compiled to SQL by the index
        except FilterError as exc:
            raise invalid_input(str(exc)) from None
        return value


async def search_chunks(runtime: Runtime, request: Request, context: Any) -> Reply:
    settings = runtime.settings
    index = runtime.vector_index
    if index is None:
        raise HttpError(
            501, "no vector index is configured: set VECTOR_DB_DSN to enable search", "index_not_configured"
        )
    body = SearchRequest.model_validate(request.json(finite=True))
    if body.top_k > settings.search_max_top_k:
        raise HttpError(400, f"top_k must be at most {settings.search_max_top_k}", "top_k_too_large")
    # Imported here: the embeddings route, the most frequent cold start, never searches.
    from embedding_pipeline.vector_index.search import hit_reply, search  # noqa: PLC0415

    async with runtime.invocation(context, "http") as invocation:
        found = await search(
            invocation,
            index,
            body.query,
            top_k=body.top_k,
            mode=body.mode,
            prefix=body.prefix,
            metadata=body.filter,
            score_threshold=body.score_threshold,
        )
    payload = {
        "object": "list",
        "data": [hit_reply(hit) for hit in found.hits],
        "model": found.query_model,
        "mode": body.mode,
        "usage": {"prompt_tokens": found.tokens, "total_tokens": found.tokens},
    }
    # Metadata is the uploader's and may be large: a reply over the platform's limit would be lost.
    if len(json.dumps(payload, ensure_ascii=False).encode()) > REPLY_LIMIT_BYTES:
        raise HttpError(
            413,
            "the reply would exceed API Gateway's 2.5 MB limit: ask for a smaller top_k",
            "reply_too_large",
        )
    return 200, payload


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise invalid_input(f"{where}: holds \\u0000, which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = f"{where}: not valid Unicode: it holds a lone surrogate such as \\ud800"
        raise invalid_input(message) from None
