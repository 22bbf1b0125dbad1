"""Functional: the clients users have, unchanged, against the HTTP API on loopback: LangChain's
OpenAIEmbeddings and LlamaIndex's OpenAIEmbedding (requirements-clients.txt; never skipped).

Nothing here reaches the internet (tests/served.py blocks it). LangChain's default path counts
tokens with tiktoken, whose vocabulary is downloaded on first use: offline that fails before any
request, online it sends token ids, which the API refuses naming the setting that sends text."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import requests
import tiktoken
from langchain_openai import OpenAIEmbeddings
from llama_index.embeddings.openai import OpenAIEmbedding

from embedding_pipeline.runtime import Runtime
from testkit.yandex_emulator import vector_for
from tests.fakes import FakeEmbeddingsAPI
from tests.served import loopback_only, served
from tests.support import RuntimeFactory

KEY = "client-test-key"
HEADERS = {"X-Api-Key": KEY}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An empty tiktoken cache, and no internet: the tests see what an offline machine sees."""
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    loopback_only(monkeypatch)


@pytest.fixture
def http_runtime(make_runtime: RuntimeFactory) -> Runtime:
    return make_runtime(http_api_keys=KEY)


@pytest.fixture
async def api_url(http_runtime: Runtime) -> AsyncIterator[str]:
    async with served(http_runtime) as url:
        yield f"{url}/v1"


def close_to(vectors: Sequence[Sequence[float]], texts: Sequence[str]) -> bool:
    return all(
        vector == pytest.approx(vector_for(text, len(vector)), abs=1e-6)
        for vector, text in zip(vectors, texts, strict=True)
    )


@pytest.fixture
async def http_clients() -> AsyncIterator[dict[str, Any]]:
    """The libraries' HTTP clients, closed when the test ends (they would leave sockets open)."""
    async with httpx.AsyncClient() as async_client:
        with httpx.Client() as client:
            yield {"client": client, "async_client": async_client}


def langchain(api_url: str, clients: dict[str, Any], **options: Any) -> OpenAIEmbeddings:
    # base_url and api_key, as LangChain's docs write them: aliases, which pydantic's mypy plugin does
    # not know (it knows openai_api_base and openai_api_key).
    return OpenAIEmbeddings(  # type: ignore[call-arg]
        model="text-search-doc",
        base_url=api_url,
        api_key="unused",
        default_headers=HEADERS,
        http_client=clients["client"],
        http_async_client=clients["async_client"],
        **options,
    )


def llamaindex(api_url: str, clients: dict[str, Any], model_name: str) -> OpenAIEmbedding:
    return OpenAIEmbedding(
        model_name=model_name,
        api_base=api_url,
        api_key="unused",
        default_headers=HEADERS,
        http_client=clients["client"],
        async_http_client=clients["async_client"],
    )


async def test_langchain_sends_its_default_batches_of_1000_as_text(
    api_url: str, api: FakeEmbeddingsAPI, http_clients: dict[str, Any]
) -> None:
    """check_embedding_ctx_length=False, and nothing else changed: 1,200 texts go as two requests
    (1,000 and 200, chunk_size's default), base64 (the openai client's default), in order."""
    embeddings = langchain(api_url, http_clients, check_embedding_ctx_length=False)
    assert embeddings.chunk_size == 1000
    texts = [f"Заметка номер {index}: отпуск оформляют заранее." for index in range(1200)]
    started = time.monotonic()
    vectors = await asyncio.to_thread(embeddings.embed_documents, texts)
    elapsed = time.monotonic() - started
    assert len(vectors) == 1200
    assert close_to(vectors, texts)
    assert api.requests == 1200
    assert elapsed < 30, elapsed  # at the suite's 1,000 requests a second

    query = await embeddings.aembed_query("Как оформить отпуск?")
    assert close_to([query], ["Как оформить отпуск?"])


async def test_langchain_defaults_offline_fail_in_tiktoken_before_any_request(
    api_url: str, api: FakeEmbeddingsAPI, http_clients: dict[str, Any]
) -> None:
    with pytest.raises(requests.ConnectionError, match="openaipublic"):
        await asyncio.to_thread(langchain(api_url, http_clients).embed_documents, ["Как оформить отпуск?"])
    assert api.requests == 0


class StubEncoding:
    """What tiktoken's cl100k_base gives LangChain, without its vocabulary: token ids."""

    def encode_ordinary(self, text: str) -> list[int]:
        return list(text.encode())


async def test_langchain_defaults_online_send_token_ids_and_get_a_400_naming_the_setting(
    api_url: str, api: FakeEmbeddingsAPI, monkeypatch: pytest.MonkeyPatch, http_clients: dict[str, Any]
) -> None:
    monkeypatch.setattr(tiktoken, "encoding_for_model", lambda _model: StubEncoding())
    monkeypatch.setattr(tiktoken, "get_encoding", lambda _name: StubEncoding())
    texts = ["Как оформить отпуск?", "Командировки"]
    with pytest.raises(openai.BadRequestError) as refused:
        await asyncio.to_thread(langchain(api_url, http_clients).embed_documents, texts)
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "token_ids_not_supported"
    assert error["message"] == (
        "input[0] is a list of token ids: this API embeds text and cannot turn token ids back into text "
        "(that takes the client's tokenizer). Send the texts as strings: LangChain's OpenAIEmbeddings "
        "sends token ids unless it is built with check_embedding_ctx_length=False"
    )
    assert api.requests == 0


async def test_llamaindex_embeds_documents_and_a_query_with_its_defaults(
    api_url: str, api: FakeEmbeddingsAPI, http_clients: dict[str, Any]
) -> None:
    """`model` must be one of OpenAI's names (LlamaIndex checks it); `model_name` is what is sent,
    for documents and queries alike: one instance per model. Batches: embed_batch_size's 100."""
    documents = llamaindex(api_url, http_clients, "text-search-doc")
    queries = llamaindex(api_url, http_clients, "text-search-query")
    assert documents.embed_batch_size == 100
    texts = [f"Командировка номер {index}: суточные за каждый день." for index in range(250)]
    vectors = await asyncio.to_thread(documents.get_text_embedding_batch, texts)
    assert close_to(vectors, texts)
    query = await queries.aget_query_embedding("Как оформить командировку?")
    assert close_to([query], ["Как оформить командировку?"])
    assert api.requests == 251
    assert api.models == {
        "emb://b1gtest/text-search-doc/latest",
        "emb://b1gtest/text-search-query/latest",
    }
