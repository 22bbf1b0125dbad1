"""A question in, the nearest chunks out: the query embedded with the query model, then the index."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.vector_index.postgres import VectorIndex
from embedding_pipeline.vector_index.queries import Hit


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    query_model: str
    tokens: int  # what embedding the query cost


async def search(
    invocation: Invocation,
    index: VectorIndex,
    query: str,
    *,
    top_k: int,
    prefix: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> SearchResult:
    """The `top_k` chunks nearest to `query` among those made with the document model: a query
    vector is only comparable with document vectors of the same model family."""
    settings = invocation.settings
    embedding = await invocation.embedder.embed_text(query, settings.query_model_uri, interactive=True)
    try:
        async with asyncio.timeout(max(invocation.deadline.remaining(), 0.1)):
            hits = await index.search(
                embedding.vector,
                top_k=top_k,
                model=settings.document_model_uri,
                prefix=prefix,
                metadata=metadata,
            )
    except TimeoutError:
        raise VectorIndexError("the vector index did not answer within the invocation's time") from None
    return SearchResult(hits, settings.query_model_uri, embedding.tokens)


def hit_reply(hit: Hit) -> dict[str, Any]:
    """One hit as the HTTP API and the CLI print it."""
    return {
        "id": hit.id,
        "score": hit.score,
        "text": hit.text,
        "source": {"bucket": hit.source_bucket, "key": hit.source_key, "etag": hit.source_etag},
        "document": hit.document,
        "chunk": hit.chunk,
        "start": hit.start,
        "end": hit.end,
        "metadata": hit.metadata,
    }
