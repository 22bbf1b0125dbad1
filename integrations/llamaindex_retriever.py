"""A LlamaIndex retriever over POST /v1/search: each hit a NodeWithScore, its TextNode holding the
chunk's text and id, its provenance in `metadata` (search_api.provenance), its score the API's
cosine similarity.

    retriever = PipelineSearchRetriever(base_url="https://<gateway>", api_key="...", top_k=4)
    nodes = retriever.retrieve("Как оформить отпуск?")
    engine = RetrieverQueryEngine.from_args(retriever, llm=...)
"""

from __future__ import annotations

from typing import Any

import httpx
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from integrations.search_api import SearchApi, provenance


class PipelineSearchRetriever(BaseRetriever):
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        top_k: int = 4,
        prefix: str | None = None,
        filter: dict[str, Any] | None = None,
        timeout_s: float = 60.0,
        http_client: httpx.Client | None = None,
        http_async_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__()
        self.api = SearchApi(base_url, api_key, top_k, prefix, filter, timeout_s)
        self._http_client = http_client
        self._http_async_client = http_async_client

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.api.search(query_bundle.query_str, client=self._http_client)
        return [_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self.api.asearch(query_bundle.query_str, client=self._http_async_client)
        return [_node(hit) for hit in hits]


def _node(hit: dict[str, Any]) -> NodeWithScore:
    node = TextNode(id_=hit["id"], text=hit["text"], metadata=provenance(hit))
    return NodeWithScore(node=node, score=hit["score"])
