"""Functional: a re-upload pays for the chunks an edit touches and reads the rest from the previous
records as it goes (real SeaweedFS; the emulator counts the API calls)."""

from __future__ import annotations

import random
from typing import Any

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.previous import PreviousVectors, read_previous_chunks
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.stages.vectorize import content_hash
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.support import RuntimeFactory, context, load_event, read_json

KEY = "incoming/handbook.md"
MODEL = "emb://b1gtest/text-search-doc/latest"


def regular_paragraphs(count: int, seed: int = 1) -> list[str]:
    """Paragraphs of similar length (350-400 characters), the shape on which edits cascaded most."""
    rng = random.Random(seed)
    words = ["отпуск", "заявление", "сотрудник", "отдел", "приказ", "график"]
    words += ["оплата", "неделя", "report", "leave", "policy", "team"]
    out = []
    for number in range(count):
        text = f"Пункт {number}."
        target = rng.randint(350, 400)
        while len(text) < target:
            text += " " + " ".join(rng.choice(words) for _ in range(rng.randint(5, 10))).capitalize() + "."
        out.append(text[:target].rstrip() + ".")
    return out


async def upload(runtime: Runtime, storage: ObjectStorage, bucket: str, text: str) -> dict[str, Any]:
    await storage.put(bucket, KEY, text.encode())
    return await dispatch(runtime, load_event("storage_object_create", bucket=bucket, keys=[KEY]), context())


async def test_rewriting_one_paragraph_costs_at_most_two_calls(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """The issue's end-to-end check, through an ObjectCreate event, at the default chunk size."""
    original = regular_paragraphs(60)
    edited = list(original)
    edited[31] = edited[31][:120] + " Новый порядок согласования отпуска вводится с первого числа."
    with YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        runtime = make_runtime(
            transports=Transports(),
            embeddings_url=emulator.url,
            chunk_max_tokens=500,
            source_bucket=s3_bucket,
        )
        first = await upload(runtime, storage, s3_bucket, "\n\n".join(original))
        calls = emulator.stats.ok
        again = await upload(runtime, storage, s3_bucket, "\n\n".join(edited))
        paid = emulator.stats.ok - calls
    assert first["documents"][0]["outcome"] == again["documents"][0]["outcome"] == "embedded"
    assert 1 <= paid <= 2
    records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
    assert "\n\n".join(record["text"] for record in records) == "\n\n".join(edited)
    assert again["documents"][0]["reused"] == len(records) - paid


async def test_previous_vectors_are_read_as_needed(storage: ObjectStorage, s3_bucket: str) -> None:
    lines = []
    for number in range(6):
        text = f"chunk {number}"
        lines.append(
            f'{{"text": "{text}", "content_hash": "{content_hash(text)}", "model": "{MODEL}", '
            f'"tokens": 2, "embedding": [{number}.5, 0.25]}}'
        )
    lines.insert(3, "not json at all")
    await storage.put(s3_bucket, "records.jsonl", "\n".join(lines).encode())
    chunks = await read_previous_chunks(storage, s3_bucket, "records.jsonl", model=MODEL, dimensions=2)
    assert len(chunks) == 6
    assert (
        len(await read_previous_chunks(storage, s3_bucket, "records.jsonl", model="other", dimensions=2)) == 0
    )
    vectors = PreviousVectors(
        storage, s3_bucket, "records.jsonl", model=MODEL, dimensions=2, holds=chunks.hashes()
    )
    for number in (0, 2, 4, 5):
        vectors.want(content_hash(f"chunk {number}"))
    first = await vectors.take(content_hash("chunk 0"))
    assert first is not None
    assert list(first.vector) == [0.5, 0.25]
    later = await vectors.take(content_hash("chunk 4"))  # reads past 2 (wanted: kept) and 1, 3 (not)
    assert later is not None
    assert list(later.vector) == [4.5, 0.25]
    assert vectors.largest_ahead == 1
    earlier = await vectors.take(content_hash("chunk 2"))
    assert earlier is not None
    assert list(earlier.vector) == [2.5, 0.25]
    assert await vectors.take(content_hash("not there")) is None
    await vectors.aclose()
