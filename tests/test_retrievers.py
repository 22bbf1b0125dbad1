"""Functional: the LangChain and LlamaIndex retrievers (integrations/) against POST /v1/search on
loopback, over a real vector index (PostgreSQL with pgvector, tests/postgres.py). Never skipped:
the libraries come from requirements-clients.txt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from llama_index.core.schema import TextNode

from devstack.pgserver import PgServer
from embedding_pipeline.runtime import Runtime
from integrations import langchain_retriever, llamaindex_retriever
from integrations.search_api import SearchError
from tests.served import loopback_only, served
from tests.support import RuntimeFactory, call, request_event

KEY = "retriever-test-key"
NOTES = {
    "vacation": ("Ежегодный отпуск: двадцать восемь календарных дней, заявление за две недели.", "hr"),
    "trips": ("Командировку оформляют приказом; суточные платят за каждый день в пути.", "hr"),
    "coffee": ("Descale the coffee machine every two months, then rinse twice.", "kitchen"),
}


@pytest.fixture
async def indexed(
    make_runtime: RuntimeFactory, pg_server: PgServer, index_table: str, s3_bucket: str
) -> Runtime:
    """An instance with the vector index, holding three short notes, one chunk each."""
    runtime = make_runtime(
        http_api_keys=KEY, source_bucket=s3_bucket, vector_db_dsn=pg_server.dsn, vector_db_table=index_table
    )
    for name, (text, team) in NOTES.items():
        body = {"id": name, "text": text, "metadata": {"team": team}}
        status, reply = await call(runtime, request_event("POST", "/v1/documents", body, key=KEY))
        assert status == 202, reply
    return runtime


@pytest.fixture
async def gateway(indexed: Runtime, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    loopback_only(monkeypatch)
    async with served(indexed) as url:
        yield url


def assert_hit_of_vacation(text: str, metadata: dict[str, Any], score: float | None) -> None:
    """The fake embeddings API's vector depends on the text alone: a chunk's own text finds it first."""
    assert text == NOTES["vacation"][0]
    assert score == pytest.approx(2 / 61, abs=1e-6)  # hybrid: first by vector and by keyword
    assert metadata["vector_score"] == pytest.approx(1.0, abs=1e-5)
    assert metadata["id"] == "vacation#0"
    assert (metadata["document"], metadata["chunk"]) == ("_inline/vacation", 0)
    assert (metadata["start"], metadata["end"]) == (0, len(NOTES["vacation"][0]))
    assert metadata["metadata"] == {"team": "hr"}
    assert set(metadata["source"]) == {"bucket", "key", "etag"}


async def test_langchain_retriever_returns_documents_with_provenance_and_score(gateway: str) -> None:
    retriever = langchain_retriever.PipelineSearchRetriever(base_url=gateway, api_key=KEY, top_k=2)
    documents = await retriever.ainvoke(NOTES["vacation"][0])
    assert len(documents) == 2
    best = documents[0]
    assert best.id == "vacation#0"
    assert_hit_of_vacation(best.page_content, best.metadata, best.metadata["score"])
    assert documents[1].metadata["score"] < best.metadata["score"]

    kitchen = langchain_retriever.PipelineSearchRetriever(
        base_url=f"{gateway}/v1", api_key=KEY, filter={"team": "kitchen"}
    )
    assert [document.id for document in await kitchen.ainvoke("отпуск")] == ["coffee#0"]


async def test_llamaindex_retriever_returns_nodes_with_provenance_and_score(gateway: str) -> None:
    retriever = llamaindex_retriever.PipelineSearchRetriever(gateway, KEY, top_k=3)
    nodes = await retriever.aretrieve(NOTES["vacation"][0])
    assert len(nodes) == 3
    assert isinstance(nodes[0].node, TextNode)
    assert nodes[0].node.node_id == "vacation#0"
    assert_hit_of_vacation(nodes[0].node.text, nodes[0].node.metadata, nodes[0].score)
    scores = [node.get_score() for node in nodes]
    assert scores == sorted(scores, reverse=True)

    hr = llamaindex_retriever.PipelineSearchRetriever(gateway, KEY, prefix="_inline/t")
    assert [node.node.node_id for node in await hr.aretrieve("отпуск")] == ["trips#0"]


async def test_the_sync_paths_and_a_refusal_carry_the_apis_reason(gateway: str) -> None:
    """Sync calls block: they run in a thread so that the instance, on this loop, can answer."""
    lc = langchain_retriever.PipelineSearchRetriever(base_url=gateway, api_key=KEY, top_k=1)
    documents = await asyncio.to_thread(lc.invoke, NOTES["trips"][0])
    assert [document.id for document in documents] == ["trips#0"]
    li = llamaindex_retriever.PipelineSearchRetriever(gateway, KEY, top_k=1)
    nodes = await asyncio.to_thread(li.retrieve, NOTES["coffee"][0])
    assert [node.node.node_id for node in nodes] == ["coffee#0"]

    wrong = langchain_retriever.PipelineSearchRetriever(base_url=gateway, api_key="wrong")
    with pytest.raises(SearchError) as refused:
        await wrong.ainvoke("отпуск")
    assert (refused.value.status, refused.value.code) == (403, "invalid_api_key")
    too_many = llamaindex_retriever.PipelineSearchRetriever(gateway, KEY, top_k=10_000)
    with pytest.raises(SearchError, match="top_k must be at most"):
        await too_many.aretrieve("отпуск")
