"""Buckets of many documents for the sweep benchmarks, written straight into SeaweedFS.

`put_sources` writes one-chunk documents of a few kinds and sizes; `put_current` also writes, for
each, the records object and the manifest the pipeline would have written (same keys, ETags and
fingerprint), so that a sweep finds them current without the hours their embedding would take.
Everything is seeded: the same call writes the same bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.models import (
    Manifest,
    ManifestUsage,
    SourceRef,
    chunking_summary,
    recipe,
    utc_now,
)
from embedding_pipeline.settings import Settings

_WORDS = (
    "отчёт",
    "выручка",
    "клиент",
    "договор",
    "report",
    "revenue",
    "client",
    "contract",
    "vector",
    "search",
)
KINDS = ("md", "txt", "html")


def document_text(number: int, kind: str) -> bytes:
    """A one-chunk document of 300-1,100 characters, its length drawn from `number`."""
    draw = random.Random(number)
    words = [draw.choice(_WORDS) for _ in range(draw.randint(40, 140))]
    text = " ".join(words).capitalize() + "."
    if kind == "html":
        return f"<html><body><h1>Документ {number}</h1><p>{text}</p></body></html>".encode()
    if kind == "md":
        return f"# Документ {number}\n\n{text}".encode()
    return f"Документ {number}. {text}".encode()


def key_of(number: int, kind: str) -> str:
    # Folders of a hundred, named so that a folder's key sorts between its neighbours' files.
    return f"incoming/set-{number // 100:04d}/doc-{number:06d}.{kind}"


async def each(count: int, work: Callable[[int], Awaitable[None]], *, at_once: int = 48) -> None:
    gate = asyncio.Semaphore(at_once)

    async def one(number: int) -> None:
        async with gate:
            await work(number)

    await asyncio.gather(*(one(number) for number in range(count)))


async def put_sources(storage: ObjectStorage, bucket: str, count: int, *, start: int = 0) -> None:
    async def put(number: int) -> None:
        kind = KINDS[(start + number) % len(KINDS)]
        await storage.put(bucket, key_of(start + number, kind), document_text(start + number, kind))

    await each(count, put)


async def put_current(
    storage: ObjectStorage, bucket: str, settings: Settings, count: int, *, tokens_per_char: float = 0.25
) -> None:
    """Sources with the outputs a pipeline run would leave: records (one short line) and manifest."""
    layout = OutputLayout(bucket, settings.output_prefix)
    model = settings.document_model_uri
    fingerprint = recipe(settings, model).fingerprint

    async def put(number: int) -> None:
        kind = KINDS[number % len(KINDS)]
        key, data = key_of(number, kind), document_text(number, kind)
        keys = layout.document(key)
        source_etag = await storage.put(bucket, key, data)
        records = json.dumps({"id": f"{key}#0", "chunk": 0, "text": "", "embedding": []}).encode() + b"\n"
        records_etag = await storage.put(bucket, keys.records, records, content_type="application/x-ndjson")
        manifest = Manifest(
            source=SourceRef(bucket=bucket, key=key, etag=source_etag, size=len(data)),
            records=SourceRef(bucket=bucket, key=keys.records, etag=records_etag),
            model=model,
            dimensions=settings.embeddings_dimensions,
            chunks=1,
            format=kind,
            usage=ManifestUsage(
                tokens=round(len(data.decode()) * tokens_per_char),
                billed_tokens=0,
                api_requests=1,
                reused_chunks=0,
            ),
            chunking=chunking_summary(settings),
            fingerprint=fingerprint,
            created_at=utc_now(),
        )
        await storage.put(
            bucket, keys.manifest, manifest.model_dump_json().encode(), content_type="application/json"
        )

    await each(count, put)


def digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
