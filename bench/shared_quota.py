"""One folder quota, many instances: the issue's table, measured with real processes.

Each instance is a process running `index.handler` (bench/instance.py) on its own document, against
SeaweedFS and the emulator with a folder-wide limit (10 rps, 50 ms latency, Yandex's 429 text, no
Retry-After). Instances split the quota at run time (embedding_pipeline/quota_share.py). Targets:
| 1 instance, 600 chunks                         | >= 9.5 chunks/s                               |
| 3 instances, 200 chunks each, started together | >= 9.0 chunks/s, <= 5% 429s, all complete       |
| 6 instances, 100 chunks each                   | >= 8.5 chunks/s, <= 10% 429s                   |
| 1 HTTP request of 1 input while 3 ingest       | p95 <= 1 s over 20 requests                    |
| quota 10 -> 20 mid-run, then -> 5              | the aggregate follows within 10 s, no failures |
Beside them, the same instances with QUOTA_SHARING=false: each pacing alone on its 429s.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import bucket_storage, paragraphs, s3_server
from devstack.s3server import S3Server
from devstack.yandex_emulator import EmulatorConfig, YandexEmulator
from embedding_pipeline.outputs.layout import OutputLayout

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789abcdef0123456789abcdef"
STARTUP_S = 3.0  # every process imports the function before the common start


def environment(server: S3Server, emulator: YandexEmulator, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "YC_FOLDER_ID": "b1gbench",
        "YC_API_KEY": "AQVN-bench",
        "EMBEDDINGS_URL": emulator.url,
        "EMBEDDINGS_RPS": "10",
        "S3_ENDPOINT": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "SOURCE_BUCKET": bucket,
        "CHUNK_MAX_TOKENS": "300",
        "HTTP_API_KEYS": API_KEY,
        "LOG_LEVEL": "ERROR",
        **extra,
    }


def spawn(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.instance", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )


def report_of(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=900)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        return {"failed": True, "exit": process.returncode}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def scenario(
    server: S3Server,
    chunks: list[int],
    *,
    sharing: bool = True,
    ask: int = 0,
    quota_changes: tuple[tuple[float, float], ...] = (),
) -> dict[str, Any]:
    """Instances with `chunks[i]` chunks each, started together; `ask` HTTP requests meanwhile."""
    with YandexEmulator(EmulatorConfig(rps=10, latency_s=0.05)) as emulator:
        async with bucket_storage(server) as (storage, bucket):
            keys = [f"incoming/doc-{number}.md" for number in range(len(chunks))]
            for number, (key, count) in enumerate(zip(keys, chunks, strict=True)):
                text = "\n\n".join(paragraphs(count, seed=number + 1))
                await storage.put(bucket, key, text.encode())
            start_at = time.time() + STARTUP_S
            env = environment(
                server, emulator, bucket, START_AT=str(start_at), QUOTA_SHARING=str(sharing).lower()
            )
            processes = [spawn(env, "ingest", key) for key in keys]
            asker = spawn({**env, "ASK_EVERY_S": "1.5"}, "ask", str(ask)) if ask else None
            for at, rps in quota_changes:
                await asyncio.sleep(max(0.0, start_at + at - time.time()))
                emulator.set_rps(rps)
            reports = await asyncio.to_thread(lambda: [report_of(process) for process in processes])
            asked = report_of(asker) if asker else None
            layout = OutputLayout(bucket, "embeddings/")
            complete = 0
            for key, count in zip(keys, chunks, strict=True):
                records = await storage.get(bucket, layout.document(key).records, max_bytes=10**9) or b""
                manifest = await storage.get(bucket, layout.document(key).manifest, max_bytes=10**6)
                complete += manifest is not None and records.count(b"\n") == count
        stats = emulator.stats.summary()
        admitted = [moment - start_at for moment in emulator.stats.admitted_at]
    finished = max((report.get("finished", 0.0) for report in reports), default=start_at)
    seconds = finished - start_at
    result: dict[str, Any] = {
        "instances": len(chunks),
        "chunks": sum(chunks),
        "seconds": round(seconds, 1),
        "chunks_per_s": round(sum(chunks) / seconds, 2),
        "requests": stats["requests"],
        "throttled_share": round(stats["throttled"] / max(stats["requests"], 1), 3),
        "complete": f"{complete}/{len(chunks)}",
        "failed_instances": sum(bool(report.get("failed")) for report in reports),
    }
    if asked is not None:
        latencies = sorted(asked.get("latencies", []))
        result["http"] = {
            "requests": len(latencies),
            "p50_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
            "p95_s": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 3) if latencies else None,
            "max_s": round(latencies[-1], 3) if latencies else None,
            "failures": len(asked.get("failures", [])),
        }
    if quota_changes:
        result["per_2s"] = [
            round(sum(t <= moment < t + 2 for moment in admitted) / 2, 1) for t in range(0, int(seconds), 2)
        ]
        result["follow"] = follow(admitted, quota_changes, seconds)
    return result


def follow(admitted: list[float], changes: tuple[tuple[float, float], ...], seconds: float) -> dict[str, Any]:
    """After each change, how long until the admitted rate over 2 s reaches 80% of the new quota
    (a raise), or stays within it while still using 80% of it (a cut)."""
    out = {}
    for at, rps in changes:
        reached = None
        for tenth in range(int(at * 10), int(seconds * 10) - 20):
            start = tenth / 10
            rate = sum(start <= moment < start + 2 for moment in admitted) / 2
            if rate >= 0.8 * rps:
                reached = round(start + 2 - at, 1)
                break
        out[f"to_{rps:g}_rps_s"] = reached
    return out


async def main() -> dict[str, Any]:
    with s3_server() as server:
        figures: dict[str, Any] = {
            "one_instance_600": await scenario(server, [600]),
            "three_instances_200": await scenario(server, [200] * 3),
            "six_instances_100": await scenario(server, [100] * 6),
            "http_while_three_ingest": await scenario(server, [400] * 3, ask=20),
            "quota_20_then_5": await scenario(server, [300] * 3, quota_changes=((15, 20), (35, 5))),
            "without_sharing": {
                "three_instances_200": await scenario(server, [200] * 3, sharing=False),
                "six_instances_100": await scenario(server, [100] * 6, sharing=False),
            },
        }
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
