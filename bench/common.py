"""What the benchmarks share: a real S3 server, the emulator, a pipeline instance wired to both."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from devstack.s3server import S3Server, start_s3_server, stop_s3_server, wait_for_port
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings


@contextmanager
def s3_server() -> Iterator[S3Server]:
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as workdir:
        server = start_s3_server(Path(workdir))
        try:
            wait_for_port(server)
            yield server
        finally:
            stop_s3_server(server)


@asynccontextmanager
async def bucket_storage(server: S3Server) -> AsyncIterator[tuple[ObjectStorage, str]]:
    async with httpx.AsyncClient(timeout=60) as http:
        storage = ObjectStorage(
            http, server.endpoint, sigv4_auth(server.access_key, server.secret_key, server.region)
        )
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        for _ in range(100):  # readiness: a signed write succeeds
            try:
                await storage.create_bucket(bucket)
                break
            except Exception:
                await asyncio.sleep(0.1)
        yield storage, bucket


def runtime_for(server: S3Server, embeddings_url: str, **overrides: Any) -> Runtime:
    values: dict[str, Any] = {
        "yc_folder_id": "b1gbench",
        "yc_api_key": "AQVN-bench",
        "metrics": False,  # the figures measure the pipeline, not a Monitoring write
        "embeddings_url": embeddings_url,
        "s3_endpoint": server.endpoint,
        "aws_access_key_id": server.access_key,
        "aws_secret_access_key": server.secret_key,
    }
    values.update(overrides)
    return Runtime(load_settings(**values))


WORDS = (  # Russian and English, as the documents the pipeline serves
    "отчёт",
    "выручка",
    "прибыль",
    "квартал",
    "рост",
    "клиент",
    "договор",
    "сервис",
    "функция",
    "вектор",
    "поиск",
    "данные",
    "report",
    "revenue",
    "profit",
    "quarter",
    "growth",
    "client",
    "contract",
    "service",
    "function",
    "vector",
    "search",
    "data",
)


def paragraphs(count: int, seed: int = 1) -> list[str]:
    """Deterministic Russian and English paragraphs of 500-700 characters: with 300-token chunks, one each."""
    words = WORDS
    out = []
    state = seed
    for number in range(count):
        sentences = []
        length = 0
        target = 500 + (number * 37 % 200)
        while length < target:
            state = (state * 1103515245 + 12345) % 2**31
            sentence = " ".join(words[(state >> s) % len(words)] for s in range(3, 27, 3)).capitalize() + "."
            sentences.append(sentence)
            length += len(sentence) + 1
        out.append(f"Параграф {number}. " + " ".join(sentences))
    return out


class Clock:
    def __enter__(self) -> Clock:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.seconds = time.perf_counter() - self.started
