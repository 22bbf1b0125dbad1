"""Re-upload: a 500-chunk document with one paragraph changed. Target: API calls only for changed chunks."""

from __future__ import annotations

import asyncio
import json

from bench.common import bucket_storage, paragraphs, runtime_for, s3_server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.pipeline.objects import embed_object
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator


async def main() -> dict[str, object]:
    original = paragraphs(500)
    edited = list(original)
    edited[250] = original[250] + " Добавлено одно предложение о новой выручке."
    with s3_server() as server, YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        runtime = runtime_for(server, emulator.url, embeddings_rps=10000, chunk_max_tokens=300)
        async with bucket_storage(server) as (storage, bucket):
            run = await runtime.open_invocation(None)
            await storage.put(bucket, "incoming/doc.md", "\n\n".join(original).encode())
            first = await embed_object(run, bucket, "incoming/doc.md")
            calls_before = emulator.stats.ok
            await storage.put(bucket, "incoming/doc.md", "\n\n".join(edited).encode())
            second = await embed_object(run, bucket, "incoming/doc.md")
            calls = emulator.stats.ok - calls_before
            redelivery = await embed_object(run, bucket, "incoming/doc.md")
        await runtime.aclose()
    return {
        "chunks": first.chunks,
        "api_calls_after_one_edit": calls,
        "reused": second.reused,
        "api_calls_on_redelivery": emulator.stats.ok - calls_before - calls,
        "redelivery_outcome": redelivery.outcome,
    }


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(asyncio.run(main()), indent=2))
