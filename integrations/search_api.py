"""POST /v1/search from a client's side: the request body, the hits it answers, and its errors.

The API's reply (handlers/http/search.py) lists hits, best first, each with `id`, `score` (in the
default hybrid mode the fused RRF score; `vector_score` is the cosine similarity, None when the
vector side did not find it), `text`, `document`, `chunk`, `start`, `end`, `source` (bucket, key,
etag) and the uploader's `metadata`. A hit's provenance goes into what a retriever returns as metadata, the
uploader's own under "metadata", so that neither overwrites the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class SearchError(Exception):
    """The API refused or failed a search; `message` is its own reason (OpenAI's error shape)."""

    def __init__(self, status: int, message: str, code: str | None) -> None:
        super().__init__(f"POST /v1/search answered {status}: {message}")
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class SearchApi:
    """Where the API is and what a search asks of it."""

    base_url: str  # the gateway's URL, with or without /v1
    api_key: str | None = None  # one of HTTP_API_KEYS, sent as X-Api-Key
    top_k: int = 4
    prefix: str | None = None  # only documents whose key starts with it
    filter: dict[str, Any] | None = None  # every pair must be in a chunk's metadata
    timeout_s: float = 60.0

    @property
    def url(self) -> str:
        base = self.base_url.rstrip("/")
        return f"{base if base.endswith('/v1') else base + '/v1'}/search"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Api-Key": self.api_key} if self.api_key else {}

    def body(self, query: str) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, "top_k": self.top_k}
        if self.prefix is not None:
            body["prefix"] = self.prefix
        if self.filter is not None:
            body["filter"] = self.filter
        return body

    def search(self, query: str, *, client: httpx.Client | None = None) -> list[dict[str, Any]]:
        """The hits, best first."""
        if client is not None:
            return hits_of(client.post(self.url, json=self.body(query), headers=self.headers))
        with httpx.Client(timeout=self.timeout_s) as own:
            return hits_of(own.post(self.url, json=self.body(query), headers=self.headers))

    async def asearch(self, query: str, *, client: httpx.AsyncClient | None = None) -> list[dict[str, Any]]:
        if client is not None:
            return hits_of(await client.post(self.url, json=self.body(query), headers=self.headers))
        async with httpx.AsyncClient(timeout=self.timeout_s) as own:
            return hits_of(await own.post(self.url, json=self.body(query), headers=self.headers))


def hits_of(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code != 200:
        try:
            error = response.json()["error"]
            message, code = str(error["message"]), error.get("code")
        except (ValueError, KeyError, TypeError):
            message, code = response.text[:500], None
        raise SearchError(response.status_code, message, code)
    hits: list[dict[str, Any]] = response.json()["data"]
    return hits


def provenance(hit: dict[str, Any]) -> dict[str, Any]:
    """What a retriever keeps of a hit beside its text: where it comes from, and its score."""
    return {
        "id": hit["id"],
        "score": hit["score"],
        "vector_score": hit.get("vector_score"),
        "document": hit["document"],
        "chunk": hit["chunk"],
        "start": hit["start"],
        "end": hit["end"],
        "source": hit["source"],
        "metadata": hit["metadata"],
    }
