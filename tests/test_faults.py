"""Hardening: the loopback Yandex emulator behaves as documented, and the pipeline survives its faults."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.yandex_emulator import EmulatorConfig, YandexEmulator
from embedding_pipeline.documents import ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.storage import ObjectStorage
from handlers import dispatch
from tests.seaweed import S3Server
from tests.support import FakeContext, load_event, settings_for


def post(emulator: YandexEmulator, body: Any, authorization: str | None = "Api-Key k") -> httpx.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return httpx.post(f"{emulator.url}/embeddings", json=body, headers=headers, timeout=10)


def test_emulator_speaks_like_yandex() -> None:
    with YandexEmulator(EmulatorConfig(rps=3, max_tokens=10)) as emulator:
        ok = post(emulator, {"model": "emb://f/text-search-doc/latest", "input": "привет"})
        assert ok.status_code == 200
        assert len(ok.json()["data"][0]["embedding"]) == 256
        assert ok.json()["usage"]["total_tokens"] == 1
        assert post(emulator, {"model": "m", "input": ["a", "b"]}).status_code == 400
        too_long = post(emulator, {"model": "m", "input": "x" * 100})
        assert too_long.status_code == 400
        assert "tokens" in too_long.json()["error"]["message"]
        assert post(emulator, {"model": "m", "input": "a"}, authorization=None).status_code == 401
        throttled = post(emulator, {"model": "m", "input": "a"})
        assert throttled.status_code == 429  # the 4th request within a second at 3 rps
        assert "allowed 3 requests" in throttled.json()["error"]["message"]


def test_emulator_injects_each_fault_kind() -> None:
    config = EmulatorConfig(rps=1000, fault_rate=1.0, hang_s=0.3)
    seen: set[str] = set()
    with YandexEmulator(config) as emulator:
        for _ in range(40):
            try:
                response = httpx.post(
                    f"{emulator.url}/embeddings",
                    json={"model": "m", "input": "a"},
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
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    config = EmulatorConfig(rps=1000, fault_rate=0.2, hang_s=0.5)
    with YandexEmulator(config) as emulator:
        runtime = Runtime(
            settings_for(
                s3_server,
                yc_api_key="AQVN-test",
                embeddings_url=emulator.url,
                embeddings_timeout_s=0.3,
                embeddings_max_attempts=12,
            )
        )
        for key, text in DOCUMENTS.items():
            await storage.put(s3_bucket, key, text.encode())
        event = load_event("storage_object_create", bucket=s3_bucket, keys=list(DOCUMENTS))

        reply = await dispatch(runtime, event, FakeContext())
        await runtime.aclose()

        assert emulator.stats.faults > 0
        assert {item["outcome"] for item in reply["documents"]} == {"embedded"}
        for key, text in DOCUMENTS.items():
            expected = [
                c.text
                for c in chunk_document(parse_document(text.encode(), key), ChunkingSettings(max_tokens=120))
            ]
            data = await storage.get(s3_bucket, f"embeddings/{key}.jsonl", max_bytes=10**7)
            assert data is not None
            records = [json.loads(line) for line in data.splitlines()]
            assert [record["text"] for record in records] == expected
        # The API itself answered each distinct text once: no chunk was paid for twice.
        assert max(emulator.stats.texts.values()) == 1


@pytest.mark.parametrize("fault", ["500", "503", "timeout", "drop"])
async def test_each_fault_alone_is_retried_to_success(s3_server: S3Server, fault: str) -> None:
    with YandexEmulator(EmulatorConfig(rps=1000, fault_rate=0.5, faults=(fault,), hang_s=0.6)) as emulator:
        runtime = Runtime(settings_for(s3_server, embeddings_url=emulator.url, embeddings_timeout_s=0.3))
        event = {
            "httpMethod": "POST",
            "version": "1.0",
            "path": "/v1/embeddings",
            "headers": {},
            "body": json.dumps({"input": [f"text {n}" for n in range(6)], "encoding_format": "float"}),
        }
        reply = await dispatch(runtime, event, FakeContext())
        await runtime.aclose()
    assert reply["statusCode"] == 200
    assert len(json.loads(reply["body"])["data"]) == 6
    assert emulator.stats.faults > 0
