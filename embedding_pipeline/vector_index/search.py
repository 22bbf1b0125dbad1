"""A question in, the best chunks out, as the HTTP route and the CLI ask: by vector (the query
embedded with the query model), by keyword (no embedding at all: nothing is paid), or both fused."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.vector_index.postgres import VectorIndex
from embedding_pipeline.vector_index.queries import Hit
from embedding_pipeline.vector_index.search_sql import Mode, SearchSpec


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    query_model: str | None  # None: the query was not embedded (keyword mode)
    tokens: int  # what embedding the query cost


async def search(
    invocation: Invocation,
    index: VectorIndex,
    query: str,
    *,
    top_k: int,
    mode: Mode = "hybrid",
    prefix: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    score_threshold: float | None = None,
) -> SearchResult:
    """The `top_k` chunks that match `query` best among those made with the document model (a query
    vector is only comparable with document vectors of the same model family); those whose score is
    below `score_threshold` dropped."""
    settings = invocation.settings
    vector, tokens, query_model = None, 0, None
    if mode != "keyword":
        embedding = await invocation.embedder.embed_text(query, settings.query_model_uri, interactive=True)
        vector, tokens, query_model = embedding.vector, embedding.tokens, settings.query_model_uri
    spec = SearchSpec(
        mode=mode,
        text=query,
        vector=vector,
        top_k=top_k,
        model=settings.document_model_uri,
        prefix=prefix,
        metadata=metadata,
        limit=settings.search_candidates,
        rrf_k=settings.search_rrf_k,
    )
    try:
        async with asyncio.timeout(max(invocation.deadline.remaining(), 0.1)):
            hits = await index.search(spec)
    except TimeoutError:
        raise VectorIndexError("the vector index did not answer within the invocation's time") from None
    if score_threshold is not None:
        hits = [hit for hit in hits if hit.score >= score_threshold]
    return SearchResult(hits, query_model, tokens)


def hit_reply(hit: Hit) -> dict[str, Any]:
    """One hit as the HTTP API and the CLI print it."""
    return {
        "id": hit.id,
        "score": hit.score,
        "vector_score": hit.vector_score,
        "vector_rank": hit.vector_rank,
        "keyword_rank": hit.keyword_rank,
        "text": hit.text,
        "source": {"bucket": hit.source_bucket, "key": hit.source_key, "etag": hit.source_etag},
        "document": hit.document,
        "chunk": hit.chunk,
        "start": hit.start,
        "end": hit.end,
        "metadata": hit.metadata,
    }
