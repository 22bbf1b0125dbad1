"""Hardening: the loopback Yandex emulator behaves as documented, and the pipeline survives its faults."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.events import http_event
from devstack.s3server import free_port, stop_s3_server
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import DocumentBusy, StorageError
from embedding_pipeline.outputs import claims
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.stages.documents import ChunkingSettings, chunk_document, parse_document
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.fakes import FakeEmbeddingsAPI
from tests.seaweed import admin_storage, running_s3_server
from tests.support import RuntimeFactory, context, load_event, read_json, settings_for

MODEL = "emb://b1gtest/text-search-doc/latest"


def post(emulator: YandexEmulator, body: Any, authorization: str | None = "Api-Key k") -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.post(f"{emulator.url}/embeddings", json=body, headers=headers, timeout=10)


def test_emulator_speaks_like_yandex() -> None:
    with YandexEmulator(EmulatorConfig(rps=3, max_tokens=10)) as emulator:
        ok = post(emulator, {"model": "emb://f/text-search-doc/latest", "input": "привет"})
        assert ok.status_code == 200
        assert len(ok.json()["data"][0]["embedding"]) == 256
        assert ok.json()["usage"]["total_tokens"] == 1
        assert post(emulator, {"model": MODEL, "input": ["a", "b"]}).status_code == 400
        too_long = post(emulator, {"model": MODEL, "input": "x" * 100})
        assert too_long.status_code == 400
        assert "tokens" in too_long.json()["error"]["message"]
        assert post(emulator, {"model": MODEL, "input": "a"}, authorization=None).status_code == 401
        throttled = post(emulator, {"model": MODEL, "input": "a"})
        assert throttled.status_code == 429  # the 4th request within a second at 3 rps
        assert "allowed 3 requests" in throttled.json()["error"]["message"]


def test_emulator_quota_is_one_window_for_all_and_changes_while_it_runs() -> None:
    with YandexEmulator(EmulatorConfig(rps=2)) as emulator:
        base = emulator.url.removesuffix("/v1")
        answers = [post(emulator, {"model": MODEL, "input": str(n)}).status_code for n in range(3)]
        assert answers == [200, 200, 429]
        emulator.set_rps(5)  # in process, as the benchmark does
        assert post(emulator, {"model": MODEL, "input": "c"}).status_code == 200
        raised = httpx.post(f"{base}/_emulator/quota", json={"rps": 20}, timeout=5)  # or over HTTP
        assert raised.json() == {"rps": 20.0}
        assert all(post(emulator, {"model": MODEL, "input": str(n)}).status_code == 200 for n in range(10))
        assert httpx.post(f"{base}/_emulator/quota", json={"rps": 0}, timeout=5).status_code == 400
        stats = httpx.get(f"{base}/_emulator/stats", timeout=5).json()
        assert (stats["ok"], stats["throttled"], stats["rps"]) == (13, 1, 20.0)
        assert len(emulator.stats.admitted_at) == 13


def test_emulator_injects_each_fault_kind() -> None:
    config = EmulatorConfig(rps=1000, fault_rate=1.0, hang_s=0.3)
    seen: set[str] = set()
    with YandexEmulator(config) as emulator:
        for _ in range(40):
            try:
                response = httpx.post(
                    f"{emulator.url}/embeddings",
                    json={"model": MODEL, "input": "a"},
                    headers={"Authorization": "Bearer t"},
                    timeout=0.2,
                )
                seen.add(str(response.status_code))
            except httpx.TimeoutException:
                seen.add("timeout")
            except httpx.TransportError:
                seen.add("drop")
        assert emulator.stats.faults == 40
        assert emulator.stats.ok == 0
    assert seen == {"500", "503", "timeout", "drop"}


DOCUMENTS = {
    f"incoming/doc-{n}.md": "\n\n".join(
        f"## Раздел {n}.{p}\n\nДокумент {n}, параграф {p}: выручка, прибыль и клиенты. Paragraph {p} of {n}."
        for p in range(12)
    )
    for n in range(4)
}


async def test_every_chunk_ends_embedded_exactly_once_under_20_percent_faults(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    config = EmulatorConfig(rps=1000, fault_rate=0.2, hang_s=0.5)
    with YandexEmulator(config) as emulator:
        runtime = make_runtime(
            transports=Transports(),  # the emulator, over real HTTP
            yc_api_key="AQVN-test",
            embeddings_url=emulator.url,
            embeddings_timeout_s=0.3,
            embeddings_max_attempts=12,
        )
        for key, text in DOCUMENTS.items():
            await storage.put(s3_bucket, key, text.encode())
        event = load_event("storage_object_create", bucket=s3_bucket, keys=list(DOCUMENTS))

        reply = await dispatch(runtime, event, context())

        assert emulator.stats.faults > 0
        assert {item["outcome"] for item in reply["documents"]} == {"embedded"}
        for key, text in DOCUMENTS.items():
            expected = [
                c.text
                for c in chunk_document(parse_document(text.encode(), key), ChunkingSettings(max_tokens=120))
            ]
            records = await read_json(storage, s3_bucket, f"embeddings/{key}.jsonl")
            assert [record["text"] for record in records] == expected
        # The API itself answered each distinct text once: no chunk was paid for twice.
        assert max(emulator.stats.texts.values()) == 1


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "drop"])
async def test_each_fault_alone_is_retried_to_success(make_runtime: RuntimeFactory, fault: str) -> None:
    with YandexEmulator(EmulatorConfig(rps=1000, fault_rate=0.5, faults=(fault,), hang_s=0.6)) as emulator:
        runtime = make_runtime(
            transports=Transports(),  # the emulator, over real HTTP
            embeddings_url=emulator.url,
            embeddings_timeout_s=0.3,
        )
        body = json.dumps({"input": [f"text {n}" for n in range(6)], "encoding_format": "float"})
        event = http_event("POST", "/v1/embeddings", {}, body, shape="1.0")
        reply = await dispatch(runtime, event, context())
    assert reply["statusCode"] == 200
    assert len(json.loads(reply["body"])["data"]) == 6
    assert emulator.stats.faults > 0


async def test_storage_outage_mid_run_fails_clearly_and_the_retry_after_restart_completes(
    tmp_path: Path, api: FakeEmbeddingsAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SeaweedFS is stopped while chunks are being embedded: the invocation raises a StorageError
    (the trigger's retry signal) naming the operation; once storage is back, the redelivered event
    finishes to the same records as an uninterrupted run. The run could not give up its claim on
    the document (storage was down): a redelivery before the claim lapses is told to come again."""
    monkeypatch.setattr(claims, "HOLD_S", 3.0)
    workdir, port = tmp_path / "seaweedfs", free_port()
    key, bucket = "incoming/long.md", "outage"
    text = DOCUMENTS["incoming/doc-0.md"] + "\n\n" + DOCUMENTS["incoming/doc-1.md"]
    event = load_event("storage_object_create", bucket=bucket, keys=[key])
    async with httpx.AsyncClient() as storage_http:  # the same port after the restart: one client serves both
        with running_s3_server(workdir, port=port) as server:
            storage = admin_storage(storage_http, server)
            await storage.create_bucket(bucket)
            await storage.put(bucket, key, text.encode())

            def stop_storage_at_the_fifth_text(_text: str) -> httpx.Response | None:
                if api.requests == 5:
                    stop_s3_server(server)
                return None

            api.fail = stop_storage_at_the_fifth_text
            async with Runtime(
                settings_for(server, embeddings_concurrency=1), Transports(embeddings=api.transport)
            ) as runtime:
                with pytest.raises(
                    StorageError, match=f"s3://{bucket}/.* failed after 3 attempts: ConnectError"
                ):
                    await dispatch(runtime, event, context())
        paid_before_outage = api.embedded
        api.fail = lambda _text: None

        with running_s3_server(workdir, port=port) as server:
            async with Runtime(settings_for(server), Transports(embeddings=api.transport)) as runtime:
                for _delivery in range(20):  # as the trigger delivers again, until the claim lapses
                    try:
                        reply = await dispatch(runtime, event, context())
                        break
                    except DocumentBusy:
                        await asyncio.sleep(0.5)
            records = await read_json(storage, bucket, f"embeddings/{key}.jsonl")

    assert reply["documents"][0]["outcome"] == "embedded"
    expected = [
        c.text for c in chunk_document(parse_document(text.encode(), key), ChunkingSettings(max_tokens=120))
    ]
    assert [record["text"] for record in records] == expected
    assert paid_before_outage > 0
    # What was embedded while storage was down could not be saved anywhere: the retry pays for it
    # again, at most once per text (checkpoint parts are written every 200 texts).
    assert set(api.texts) == set(expected)
    assert max(api.texts.values()) <= 2
