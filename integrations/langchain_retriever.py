"""A LangChain retriever over POST /v1/search: each hit a Document with the chunk's text, its id,
and its provenance and score in `metadata` (search_api.provenance).

    retriever = PipelineSearchRetriever(base_url="https://<gateway>", api_key="...", top_k=4)
    documents = retriever.invoke("Как оформить отпуск?")
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from integrations.search_api import SearchApi, provenance


class PipelineSearchRetriever(BaseRetriever):
    base_url: str
    api_key: str | None = None
    top_k: int = 4
    prefix: str | None = None
    filter: dict[str, Any] | None = None
    timeout_s: float = 60.0
    http_client: httpx.Client | None = None  # a caller's own client (proxies, TLS); else one per call
    http_async_client: httpx.AsyncClient | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @property
    def _api(self) -> SearchApi:
        return SearchApi(self.base_url, self.api_key, self.top_k, self.prefix, self.filter, self.timeout_s)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [_document(hit) for hit in self._api.search(query, client=self.http_client)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = await self._api.asearch(query, client=self.http_async_client)
        return [_document(hit) for hit in hits]


def _document(hit: dict[str, Any]) -> Document:
    return Document(id=hit["id"], page_content=hit["text"], metadata=provenance(hit))
