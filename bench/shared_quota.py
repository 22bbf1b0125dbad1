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

Bursts of short invocations (a folder of small files dropped at once):
| 8 instances, 4 chunks each, started together   | <= 10% 429s, wall <= 1.3 x (32 / quota + latency) |
| 20 instances, 2 chunks each                    | <= 10% 429s                                   |
| waves: 8 instances of 4 chunks every 2 s, 30 s | >= 85% of the quota over the run, <= 5% 429s  |
| 3 instances, 60 chunks each, process start in  | >= 9.0 chunks/s together, <= 5% 429s          |
Waves offer 16 chunks a second, more than the quota: what is measured is how much of it they use.

    python -m bench.shared_quota [scenario ...]    all of them, or only those named
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import bucket_storage, paragraphs, s3_server
from devstack.s3server import S3Server
from embedding_pipeline.outputs.layout import OutputLayout
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789abcdef0123456789abcdef"
STARTUP_S = 3.0  # every process imports the function before the common start
QUOTA = 10.0
LATENCY_S = 0.05


def environment(server: S3Server, emulator: YandexEmulator, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "YC_FOLDER_ID": "b1gbench",
        "METRICS": "false",  # the figures measure the pipeline, not a Monitoring write
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
    starts: list[float] | None = None,
    cold: bool = False,
    source_bucket: bool = True,
) -> dict[str, Any]:
    """Instances with `chunks[i]` chunks each, started together (or `starts[i]` seconds after the
    first); `ask` HTTP requests meanwhile. Each process imports the function STARTUP_S before its
    start, unless `cold`: then it is spawned at its start, and its process start counts."""
    offsets = starts or [0.0] * len(chunks)
    with YandexEmulator(EmulatorConfig(rps=QUOTA, latency_s=LATENCY_S)) as emulator:
        async with bucket_storage(server) as (storage, bucket):
            keys = [f"incoming/doc-{number}.md" for number in range(len(chunks))]
            for number, (key, count) in enumerate(zip(keys, chunks, strict=True)):
                text = "\n\n".join(paragraphs(count, seed=number + 1))
                await storage.put(bucket, key, text.encode())
            start_at = time.time() + (0.0 if cold else STARTUP_S)
            env = environment(
                server, emulator, bucket, START_AT=str(start_at), QUOTA_SHARING=str(sharing).lower()
            )
            if not source_bucket:  # as a function made in the console: the event names the bucket
                env["EVENT_BUCKET"] = env.pop("SOURCE_BUCKET")
            asker = spawn({**env, "ASK_EVERY_S": "1.5"}, "ask", str(ask)) if ask else None
            processes = await launch(env, keys, offsets, start_at, cold=cold)
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
        refused_at = [moment - start_at for moment in emulator.stats.throttled_at]
    finished = max((report.get("finished", 0.0) for report in reports), default=start_at)
    seconds = finished - start_at
    result: dict[str, Any] = {
        "instances": len(chunks),
        "chunks": sum(chunks),
        "seconds": round(seconds, 2),
        "chunks_per_s": round(sum(chunks) / seconds, 2),
        "of_quota": round(sum(chunks) / seconds / QUOTA, 3),
        "requests": stats["requests"],
        "accepted": stats["ok"],
        "refused": stats["throttled"],
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
    if quota_changes or starts:
        result["per_2s"] = [
            round(sum(t <= moment < t + 2 for moment in admitted) / 2, 1) for t in range(0, int(seconds), 2)
        ]
    if starts:
        result["refused_per_2s"] = [
            sum(t <= moment < t + 2 for moment in refused_at) for t in range(0, int(seconds), 2)
        ]
    if quota_changes:
        result["follow"] = follow(admitted, quota_changes, seconds)
    return result


async def launch(
    env: dict[str, str],
    keys: list[str],
    offsets: list[float],
    start_at: float,
    *,
    cold: bool,
) -> list[subprocess.Popen[str]]:
    """One process per key, each spawned STARTUP_S before its start (at it, if `cold`)."""
    lead = 0.0 if cold else STARTUP_S
    processes = []
    for key, offset in sorted(zip(keys, offsets, strict=True), key=lambda pair: pair[1]):
        await asyncio.sleep(max(0.0, start_at + offset - lead - time.time()))
        processes.append(spawn({**env, "START_AT": str(start_at + offset)}, "ingest", key))
    return processes


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


def waves(every_s: float = 2.0, until_s: float = 30.0, size: int = 8) -> list[float]:
    return [wave * every_s for wave in range(int(until_s / every_s)) for _ in range(size)]


def burst_target(chunks: int) -> float:
    """The 8 x 4 burst's wall-clock target: 1.3 x (its chunks at the quota + one request's latency)."""
    return round(1.3 * (chunks / QUOTA + LATENCY_S), 2)


SCENARIOS: dict[str, Callable[[S3Server], Awaitable[dict[str, Any]]]] = {
    "one_instance_600": lambda server: scenario(server, [600]),
    "three_instances_200": lambda server: scenario(server, [200] * 3),
    "six_instances_100": lambda server: scenario(server, [100] * 6),
    "http_while_three_ingest": lambda server: scenario(server, [400] * 3, ask=20),
    "quota_20_then_5": lambda server: scenario(server, [300] * 3, quota_changes=((15, 20), (35, 5))),
    "without_sharing_three_200": lambda server: scenario(server, [200] * 3, sharing=False),
    "without_sharing_six_100": lambda server: scenario(server, [100] * 6, sharing=False),
    "burst_eight_4": lambda server: scenario(server, [4] * 8),
    "burst_twenty_2": lambda server: scenario(server, [2] * 20),
    "waves_eight_4_every_2s": lambda server: scenario(server, [4] * 120, starts=waves()),
    "cold_three_60": lambda server: scenario(server, [60] * 3, cold=True),
    "cold_three_60_no_source_bucket": lambda server: scenario(
        server, [60] * 3, cold=True, source_bucket=False
    ),
    "burst_eight_4_no_source_bucket": lambda server: scenario(server, [4] * 8, source_bucket=False),
}


async def main(names: list[str] | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with s3_server() as server:
        for name in names or list(SCENARIOS):
            figures[name] = await SCENARIOS[name](server)
            if name == "burst_eight_4":
                figures[name]["target_seconds"] = burst_target(32)
    return figures


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1:])), indent=2))
