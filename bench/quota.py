"""Throughput at and above the quota, beside the two loops users copy today.

At the quota: 600 chunks, emulator at 10 rps with 50 ms latency. Target: >= 9.5 chunks/s, <= 1% of
requests answered 429, no chunk lost. Peers on the same work: a serial loop with a fixed 0.1 s sleep
(LangChain's YandexGPTEmbeddings advice) and an unthrottled concurrent loop that retries with
exponential backoff (what the SDK does). Above the quota: emulator at 200 rps, 50 ms latency; target
>= 90% of min(quota, concurrency / latency).
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx

from bench.common import Clock, bucket_storage, paragraphs, runtime_for, s3_server
from devstack.context import LocalContext
from devstack.s3server import S3Server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.objects import embed_object
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

MODEL = "emb://b1gbench/text-search-doc/latest"


async def pipeline_run(
    server: S3Server, rps: float, latency_s: float, chunks: int, concurrency: int = 32
) -> dict[str, Any]:
    text = "\n\n".join(paragraphs(chunks))
    with YandexEmulator(EmulatorConfig(rps=rps, latency_s=latency_s)) as emulator:
        runtime = runtime_for(
            server, emulator.url, embeddings_rps=rps, embeddings_concurrency=concurrency, chunk_max_tokens=300
        )
        async with bucket_storage(server) as (storage, bucket):
            await storage.put(bucket, "incoming/bench.md", text.encode())
            run = await runtime.open_invocation(LocalContext(timeout_s=3600))
            with Clock() as clock:
                result = await embed_object(run, bucket, "incoming/bench.md")
            records_key = OutputLayout(bucket, "embeddings/").document("incoming/bench.md").records
            data = await storage.get(bucket, records_key, max_bytes=10**9) or b""
        await runtime.aclose()
        stats = emulator.stats
    records = data.count(b"\n")
    return {
        "chunks": result.chunks,
        "records": records,
        "seconds": round(clock.seconds, 2),
        "chunks_per_s": round(result.chunks / clock.seconds, 2),
        "requests": stats.requests,
        "throttled": stats.throttled,
        "throttled_share": round(stats.throttled / max(stats.requests, 1), 4),
        "lost": result.chunks - records,
    }


async def serial_with_sleep(texts: list[str], rps: float, latency_s: float) -> dict[str, Any]:
    with YandexEmulator(EmulatorConfig(rps=rps, latency_s=latency_s)) as emulator:
        async with httpx.AsyncClient(timeout=30) as http:
            with Clock() as clock:
                for text in texts:
                    while True:
                        reply = await http.post(
                            f"{emulator.url}/embeddings",
                            json={"model": MODEL, "input": text},
                            headers={"Authorization": "Api-Key x"},
                        )
                        await asyncio.sleep(0.1)
                        if reply.status_code == 200:
                            break
        stats = emulator.stats
    return _peer(len(texts), clock.seconds, stats.requests, stats.throttled)


async def unthrottled_with_retries(texts: list[str], rps: float, latency_s: float) -> dict[str, Any]:
    with YandexEmulator(EmulatorConfig(rps=rps, latency_s=latency_s)) as emulator:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:

            async def one(text: str) -> None:
                for attempt in range(12):
                    try:
                        reply = await http.post(
                            f"{emulator.url}/embeddings",
                            json={"model": MODEL, "input": text},
                            headers={"Authorization": "Api-Key x"},
                        )
                        if reply.status_code == 200:
                            return
                    except httpx.TransportError:
                        pass  # the SDK retries dropped connections too
                    await asyncio.sleep(min(8.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0))

            gate = asyncio.Semaphore(64)

            async def gated(text: str) -> None:
                async with gate:
                    await one(text)

            with Clock() as clock:
                await asyncio.gather(*(gated(text) for text in texts))
        stats = emulator.stats
    return _peer(len(texts), clock.seconds, stats.requests, stats.throttled)


def _peer(count: int, seconds: float, requests: int, throttled: int) -> dict[str, Any]:
    return {
        "chunks": count,
        "seconds": round(seconds, 2),
        "chunks_per_s": round(count / seconds, 2),
        "requests": requests,
        "throttled": throttled,
        "throttled_share": round(throttled / max(requests, 1), 4),
    }


async def main() -> dict[str, Any]:
    with s3_server() as server:
        at_quota = await pipeline_run(server, rps=10, latency_s=0.05, chunks=600)
        above = await pipeline_run(server, rps=200, latency_s=0.05, chunks=2000)
    texts = paragraphs(600)
    serial = await serial_with_sleep(texts, rps=10, latency_s=0.05)
    unthrottled = await unthrottled_with_retries(texts, rps=10, latency_s=0.05)
    expected_above = min(200, 32 / 0.05)
    return {
        "at_quota": at_quota,
        "serial_sleep_0.1s": serial,
        "unthrottled_retries": unthrottled,
        "ratio_vs_serial": round(at_quota["chunks_per_s"] / serial["chunks_per_s"], 2),
        "ratio_vs_unthrottled": round(at_quota["chunks_per_s"] / unthrottled["chunks_per_s"], 2),
        "above_quota": {**above, "share_of_possible": round(above["chunks_per_s"] / expected_above, 3)},
    }


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(asyncio.run(main()), indent=2))
