"""Memory: peak RSS of a fresh process embedding a 20 MB text document. Target: under 128 MB.

The parent runs SeaweedFS and a fast emulator (no quota, no latency); the child is the function: it
imports the pipeline, embeds the document from the bucket, and reports its own peak RSS. Then one
paragraph is changed and a second fresh child re-uploads it: the previous records' vectors are read
as they are needed (outputs/previous.py). Target: the re-upload's peak no higher than the first's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from bench.common import bucket_storage, paragraphs, s3_server
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import asyncio, json, sys, time
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings

configure_logging("ERROR")

async def main():
    runtime = Runtime(load_settings())
    run = await runtime.open_invocation(None)
    started = time.perf_counter()
    result = await embed_object(run, sys.argv[1], "incoming/big.txt")
    await runtime.aclose()
    return result, time.perf_counter() - started

result, seconds = asyncio.run(main())
# VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the forking parent's peak across exec.
peak_mb = next(int(line.split()[1]) / 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"outcome": result.outcome, "chunks": result.chunks, "seconds": round(seconds, 1),
                  "peak_rss_mb": round(peak_mb, 1)}))
"""


async def main() -> dict[str, object]:
    original = paragraphs(23_000)  # about 20 MB of UTF-8 (Cyrillic is 2 bytes a letter)
    text = "\n\n".join(original).encode()
    edited = list(original)
    edited[11_500] = original[11_500] + " Добавлено одно предложение о новой выручке."
    with s3_server() as server, YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        async with bucket_storage(server) as (storage, bucket):
            env = {
                **os.environ,
                "YC_FOLDER_ID": "b1gbench",
                "METRICS": "false",  # the figures measure the pipeline, not a Monitoring write
                "YC_API_KEY": "AQVN-bench",
                "EMBEDDINGS_URL": emulator.url,
                "EMBEDDINGS_RPS": "10000",
                "S3_ENDPOINT": server.endpoint,
                "AWS_ACCESS_KEY_ID": server.access_key,
                "AWS_SECRET_ACCESS_KEY": server.secret_key,
            }
            await storage.put(bucket, "incoming/big.txt", text)
            first = await _child(env, bucket)
            calls = emulator.stats.ok
            await storage.put(bucket, "incoming/big.txt", "\n\n".join(edited).encode())
            again = await _child(env, bucket)
            again["api_calls"] = emulator.stats.ok - calls
    return {"document_mb": round(len(text) / 2**20, 1), **first, "reupload_one_paragraph": again}


async def _child(env: dict[str, str], bucket: str) -> dict[str, object]:
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, bucket],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        return {"error": child.stderr[-2000:]}
    result: dict[str, object] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
