"""Unit and functional: PACK_RECORDS packs consecutive records of equal metadata into chunks within
the budget, lists every record it holds, and keeps a one-record edit local; off, a record is a chunk."""

from __future__ import annotations

import json
import random
from array import array
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import SourceRef
from embedding_pipeline.pipeline.prepare import chunking_of
from embedding_pipeline.runtime import Transports
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents import (
    Chunk,
    ChunkingSettings,
    ParsedDocument,
    PreviousChunks,
    chunk_document,
    parse_document,
    split_chunk,
)
from embedding_pipeline.stages.vectorize import content_hash
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.support import RuntimeFactory, context, load_event, read_json

PACKED = ChunkingSettings(max_tokens=40, chars_per_token=3.0, pack_records=True)  # 120 characters
WORDS = ["отчёт", "выручка", "quarter", "growth", "client", "договор", "vector", "search"]

Record = dict[str, Any]


def text_of(rng: random.Random, low: int, high: int) -> str:
    target, text = rng.randint(low, high), ""
    while len(text) < target:
        text = f"{text} {rng.choice(WORDS)}".strip()
    return text


def jsonl(records: list[Record]) -> ParsedDocument:
    data = "\n".join(json.dumps(record, ensure_ascii=False) for record in records).encode()
    return parse_document(data, "records.jsonl")


def records_of(rng: random.Random, count: int, langs: tuple[str, ...] = ("ru",)) -> list[Record]:
    return [
        {"id": f"r{rng.randrange(10**9)}", "lang": rng.choice(langs), "text": text_of(rng, 10, 60)}
        for _ in range(count)
    ]


def assert_provenance(document: ParsedDocument, chunks: list[Chunk], max_chars: int) -> None:
    """Each chunk lists exactly the records it holds text of, in order, all of equal metadata; a
    chunk of several holds them whole; every record is listed, in order."""
    listed: list[Any] = []
    for chunk in chunks:
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert len(chunk.text) <= max_chars
        held = [s for s in document.sections if s.start < chunk.end and chunk.start < s.end]
        assert chunk.metadata["records"] == [s.metadata["record"] for s in held]
        assert chunk.metadata["ids"] == [s.metadata["id"] for s in held]
        assert {s.metadata.get("lang") for s in held} == {chunk.metadata.get("lang")}
        if len(held) > 1:
            assert all(chunk.start <= s.start and s.end <= chunk.end for s in held)
        listed += [n for n in chunk.metadata["records"] if listed[-1:] != [n]]
    assert listed == [s.metadata["record"] for s in document.sections]


def test_off_by_default_one_record_is_one_chunk() -> None:
    records = records_of(random.Random(1), 12)
    chunks = chunk_document(jsonl(records), ChunkingSettings(max_tokens=40))
    assert [c.text for c in chunks] == [r["text"] for r in records]
    assert chunks[3].metadata == {"id": records[3]["id"], "lang": "ru", "record": 3}
    assert not ChunkingSettings().pack_records


def test_equal_metadata_records_are_packed_within_the_budget() -> None:
    records = [{"id": f"a{n}", "lang": "ru", "text": f"Запись {n}: " + "x" * 30} for n in range(10)]
    document = jsonl(records)
    chunks = chunk_document(document, PACKED)
    assert len(chunks) == 5  # 40 characters a record, two and the blank line between in 120
    assert chunks[0].text == f"{records[0]['text']}\n\n{records[1]['text']}"
    assert chunks[0].metadata == {"lang": "ru", "records": [0, 1], "ids": ["a0", "a1"]}
    assert_provenance(document, chunks, PACKED.max_chars)


def test_never_packs_across_differing_metadata() -> None:
    langs = ["ru", "ru", "en", "ru", "ru", "ru"]
    records = [{"id": n, "lang": lang, "text": f"short {n}"} for n, lang in enumerate(langs)]
    chunks = chunk_document(jsonl(records), PACKED)
    assert [c.metadata["records"] for c in chunks] == [[0, 1], [2], [3, 4, 5]]
    assert [c.metadata["lang"] for c in chunks] == ["ru", "en", "ru"]


def test_metadata_must_be_equal_in_type_too() -> None:
    records = [{"text": "one", "flag": 1}, {"text": "two", "flag": True}, {"text": "three", "flag": 1.0}]
    chunks = chunk_document(jsonl(records), PACKED)
    assert [c.metadata["records"] for c in chunks] == [[0], [1], [2]]
    assert "ids" not in chunks[0].metadata  # no record has an id


def test_a_record_longer_than_a_chunk_is_chunked_alone_with_its_number() -> None:
    long_text = " ".join(["длинная запись"] * 30)  # 449 characters: four chunks
    records = [{"id": "a", "text": "before"}, {"id": "b", "text": long_text}, {"id": "c", "text": "after"}]
    document = jsonl(records)
    chunks = chunk_document(document, PACKED)
    assert chunks[0].metadata == {"records": [0], "ids": ["a"]}
    assert chunks[-1].metadata == {"records": [2], "ids": ["c"]}
    middle = chunks[1:-1]
    assert len(middle) >= 4
    assert all(c.metadata == {"records": [1], "ids": ["b"]} for c in middle)
    assert_provenance(document, chunks, PACKED.max_chars)


def test_csv_rows_are_packed_with_their_row_numbers() -> None:
    data = "id;text;team\n7;первая строка;a\n8;вторая;a\n9;третья;b\n".encode()
    chunks = chunk_document(parse_document(data, "rows.csv"), PACKED)
    assert [(c.text, c.metadata) for c in chunks] == [
        ("первая строка\n\nвторая", {"team": "a", "rows": [0, 1], "ids": ["7", "8"]}),
        ("третья", {"team": "b", "rows": [2], "ids": ["9"]}),
    ]


def test_plain_text_is_chunked_as_without_packing() -> None:
    text = "\n\n".join(f"Paragraph {n} " + "word " * 10 for n in range(12)).encode()
    unpacked = ChunkingSettings(max_tokens=40, chars_per_token=3.0)
    for key in ("doc.md", "doc.txt"):
        document = parse_document(text, key)
        assert chunk_document(document, PACKED) == chunk_document(document, unpacked)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60))
def test_any_records_keep_their_provenance(seed: int, count: int) -> None:
    rng = random.Random(seed)
    records = records_of(rng, count, langs=("ru", "en"))
    for record in rng.sample(records, k=min(2, count)):
        record["text"] = text_of(rng, 100, 300)  # some longer than a chunk
    document = jsonl(records)
    assert_provenance(document, chunk_document(document, PACKED), PACKED.max_chars)


def test_the_vectors_provenance_lists_every_packed_record() -> None:
    records = [{"id": f"a{n}", "lang": "ru", "text": f"record {n}"} for n in range(3)]
    chunk = chunk_document(jsonl(records), PACKED)[0]
    line = record_line(
        record_id="incoming/records.jsonl",
        number=0,
        chunk=chunk,
        text_hash=content_hash(chunk.text),
        vector=array("d", [0.5]),
        tokens=4,
        model="emb://b1gtest/text-search-doc/latest",
        source=SourceRef(bucket="b", key="incoming/records.jsonl", etag="e"),
    )
    written = json.loads(line)
    assert written["metadata"] == {"lang": "ru", "records": [0, 1, 2], "ids": ["a0", "a1", "a2"]}
    assert written["text"] == "record 0\n\nrecord 1\n\nrecord 2"


def test_a_packed_chunk_the_api_refuses_is_halved_between_records() -> None:
    records = [{"id": f"a{n}", "text": f"record number {n}"} for n in range(4)]
    document = jsonl(records)
    chunk = chunk_document(document, PACKED)[0]
    left, right = split_chunk(chunk)
    assert (left.text, left.metadata) == (
        "record number 0\n\nrecord number 1",
        {"records": [0, 1], "ids": ["a0", "a1"]},
    )
    assert (right.text, right.metadata) == (
        "record number 2\n\nrecord number 3",
        {"records": [2, 3], "ids": ["a2", "a3"]},
    )
    for half in (left, right):
        assert document.text[half.start : half.end] == half.text
    assert [h.metadata for h in split_chunk(left)] == [
        {"records": [0], "ids": ["a0"]},
        {"records": [1], "ids": ["a1"]},
    ]


def reupload_cost(before: ParsedDocument, after: ParsedDocument, chunking: ChunkingSettings) -> int:
    first = chunk_document(before, chunking)
    previous = PreviousChunks(content_hash)
    for chunk in first:
        previous.add(chunk.text, content_hash(chunk.text))
    known = {c.text for c in first}
    return sum(c.text not in known for c in chunk_document(after, chunking, previous=previous))


EDITS = ("replace", "insert", "delete", "append", "change_word", "change_id")


def edited(records: list[Record], kind: str, rng: random.Random) -> list[Record]:
    out = [dict(record) for record in records]
    at = rng.randrange(len(out))
    if kind == "replace":
        out[at]["text"] = text_of(rng, 10, 60)
    elif kind == "insert":
        out.insert(at, records_of(rng, 1)[0])
    elif kind == "delete":
        del out[at]
    elif kind == "append":
        out.append(records_of(rng, 1)[0])
    elif kind == "change_word":
        words = out[at]["text"].split(" ")
        words[rng.randrange(len(words))] = "изменено"
        out[at]["text"] = " ".join(words)
    else:
        out[at]["id"] = "renamed"  # metadata only: the text, and so every vector, is kept
    return out


def test_a_one_record_edit_re_embeds_at_most_two_chunks() -> None:
    chunking = ChunkingSettings(pack_records=True)  # the default budget: 1,500 characters
    paid = []
    for seed in range(240):
        rng = random.Random(seed)
        records = records_of(rng, rng.randint(40, 120))
        for record in records:
            record["text"] = text_of(rng, 40, 400)
        kind = EDITS[seed % len(EDITS)]
        paid.append(reupload_cost(jsonl(records), jsonl(edited(records, kind, rng)), chunking))
    paid.sort()
    assert paid[int(0.99 * len(paid))] <= 2
    assert paid[-1] <= 3


def test_pack_records_setting_reaches_the_chunker(monkeypatch: Any) -> None:
    monkeypatch.setenv("PACK_RECORDS", "true")
    assert chunking_of(load_settings(yc_folder_id="b1gtest")).pack_records
    monkeypatch.delenv("PACK_RECORDS")
    assert not chunking_of(load_settings(yc_folder_id="b1gtest")).pack_records


async def test_a_packed_upload_and_a_one_record_edit_through_the_pipeline(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """Functional: 300 short records in a handful of requests; one record edited costs one or two."""
    key = "incoming/faq.jsonl"
    rng = random.Random(7)
    records = [{"id": f"q{n}", "topic": "leave", "text": text_of(rng, 60, 200)} for n in range(300)]
    changed = [dict(record) for record in records]
    changed[150]["text"] = "Новый порядок согласования отпуска вводится с первого числа."

    async def upload(items: list[Record]) -> dict[str, Any]:
        data = "\n".join(json.dumps(item, ensure_ascii=False) for item in items).encode()
        await storage.put(s3_bucket, key, data)
        event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
        return await dispatch(runtime, event, context())

    with YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        runtime = make_runtime(
            transports=Transports(),
            embeddings_url=emulator.url,
            chunk_max_tokens=500,
            source_bucket=s3_bucket,
            pack_records=True,
        )
        first = await upload(records)
        calls = emulator.stats.ok
        again = await upload(changed)
        paid = emulator.stats.ok - calls
    assert first["documents"][0]["outcome"] == again["documents"][0]["outcome"] == "embedded"
    assert calls < 300 // 5
    assert 1 <= paid <= 2
    written = await read_json(storage, s3_bucket, f"embeddings/{key}.jsonl")
    listed = [n for record in written for n in record["metadata"]["records"]]
    assert listed == list(range(300))
    assert [i for record in written for i in record["metadata"]["ids"]] == [r["id"] for r in changed]
    assert all(record["metadata"]["topic"] == "leave" for record in written)
