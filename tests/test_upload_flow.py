"""Functional: ObjectCreate/ObjectDelete events through the router and pipeline into a real S3 server.

SeaweedFS (tests/seaweed.py) holds sources and outputs; the embeddings API is FakeEmbeddingsAPI, so
every billed call is counted.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsError, OutOfTime
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.stages.documents import (
    ChunkingSettings,
    PreviousChunks,
    chunk_document,
    parse_document,
)
from embedding_pipeline.stages.vectorize import content_hash
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.seaweed import S3Server
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json

KEY = "incoming/reports/q1.md"
PARAGRAPHS = [
    f"## Раздел {n}\n\nПараграф номер {n} рассказывает о квартальном отчёте. " * 3
    + f"Paragraph {n} adds English sentences about quarterly revenue and costs. " * 4
    for n in range(40)
]
DOCUMENT = "# Квартальный отчёт\n\n" + "\n\n".join(PARAGRAPHS)


async def put(storage: ObjectStorage, bucket: str, key: str, data: str | bytes) -> None:
    await storage.put(bucket, key, data.encode() if isinstance(data, str) else data)


def expected_chunk_texts(text: str, max_tokens: int = 120, *, before: str | None = None) -> list[str]:
    """The canonical chunks of `text`, or with `before`, those of a re-upload replacing it."""
    settings = ChunkingSettings(max_tokens=max_tokens)
    previous = None
    if before is not None:
        previous = PreviousChunks(content_hash)
        for chunk in chunk_document(parse_document(before.encode(), KEY), settings):
            previous.add(chunk.text, content_hash(chunk.text))
    document = parse_document(text.encode(), KEY)
    return [chunk.text for chunk in chunk_document(document, settings, previous=previous)]


async def create(runtime: Runtime, bucket: str, *keys: str, **context_overrides: Any) -> dict[str, Any]:
    event = load_event("storage_object_create", bucket=bucket, keys=list(keys))
    return await dispatch(runtime, event, context(**context_overrides))


async def test_upload_writes_records_then_manifest(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    reply = await create(runtime, s3_bucket, KEY)

    texts = expected_chunk_texts(DOCUMENT)
    assert reply["documents"][0]["outcome"] == "embedded"
    records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
    assert [record["text"] for record in records] == texts
    first = records[0]
    assert first["id"] == f"{KEY}#0"
    assert first["chunk"] == 0
    assert first["model"] == "emb://b1gtest/text-search-doc/latest"
    assert first["source"]["bucket"] == s3_bucket
    assert first["source"]["key"] == KEY
    assert len(first["embedding"]) == 256
    assert DOCUMENT[first["start"] : first["end"]] == first["text"]
    assert first["content_hash"] == content_hash(first["text"])

    manifest = await read_json(storage, s3_bucket, f"embeddings/{KEY}.manifest.json")
    head = await storage.head(s3_bucket, KEY)
    assert head is not None
    assert manifest["source"]["etag"] == head.etag == first["source"]["etag"]
    assert manifest["chunks"] == len(records)
    assert manifest["dimensions"] == 256
    assert manifest["usage"]["tokens"] == sum(record["tokens"] for record in records)
    assert manifest["chunking"]["max_tokens"] == 120
    assert manifest["created_at"].endswith("Z")
    assert api.embedded == len(set(texts))
    assert api.authorizations == {"Api-Key AQVNtest-api-key-for-fake-server"}


async def test_redelivery_costs_nothing_and_changes_nothing(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)
    before = await storage.get(s3_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8)
    calls = api.requests

    reply = await create(runtime, s3_bucket, KEY)

    assert reply["documents"][0]["outcome"] == "unchanged"
    assert api.requests == calls
    assert await storage.get(s3_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8) == before


async def test_same_input_gives_byte_identical_records_in_another_bucket(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    outputs = []
    for output_bucket in ("out-a-" + s3_bucket[-8:], "out-b-" + s3_bucket[-8:]):
        await storage.create_bucket(output_bucket)
        runtime = make_runtime(output_bucket=output_bucket)
        await put(storage, s3_bucket, KEY, DOCUMENT)
        await create(runtime, s3_bucket, KEY)
        outputs.append(await storage.get(output_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8))
        assert await storage.head(s3_bucket, f"embeddings/{KEY}.jsonl") is None
    assert outputs[0] == outputs[1]
    assert outputs[0]


async def test_reupload_with_one_changed_paragraph_embeds_only_changed_chunks(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)
    edited = DOCUMENT.replace(PARAGRAPHS[20], PARAGRAPHS[20] + " Добавлено новое предложение о прибыли.")
    old_texts = set(expected_chunk_texts(DOCUMENT))
    reuploaded = expected_chunk_texts(edited, before=DOCUMENT)
    changed = set(reuploaded) - old_texts
    assert len(changed) == 1  # the edited paragraph's chunk, whatever follows it
    api.texts.clear()

    await put(storage, s3_bucket, KEY, edited)
    reply = await create(runtime, s3_bucket, KEY)

    assert set(api.texts) == changed
    assert api.embedded == len(changed)
    assert reply["documents"][0]["reused"] == len(reuploaded) - len(changed)
    records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
    assert [record["text"] for record in records] == reuploaded


async def test_delete_removes_outputs(runtime: Runtime, storage: ObjectStorage, s3_bucket: str) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)
    await storage.delete(s3_bucket, KEY)

    reply = await dispatch(runtime, load_event("storage_object_delete", bucket=s3_bucket), context())

    assert reply["documents"][0]["outcome"] == "removed"
    assert await object_keys(storage, s3_bucket) == []


async def test_delete_event_after_reupload_keeps_outputs(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)

    reply = await dispatch(runtime, load_event("storage_object_delete", bucket=s3_bucket), context())

    assert reply["documents"][0]["outcome"] == "kept"
    assert await storage.head(s3_bucket, f"embeddings/{KEY}.manifest.json") is not None


@pytest.mark.parametrize(
    ("event_name", "key", "reason"),
    [
        ("storage_object_create", f"embeddings/{KEY}.jsonl", "output_prefix"),
        ("storage_object_create", f"embeddings/{KEY}.manifest.json", "output_prefix"),
        ("storage_object_create", "elsewhere/notes.txt", "outside_source_prefix"),
        ("storage_object_update", KEY, "not_content_change"),
    ],
)
async def test_loop_guard_and_ignored_events(
    runtime: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    event_name: str,
    key: str,
    reason: str,
) -> None:
    await put(storage, s3_bucket, key, DOCUMENT)
    reply = await dispatch(runtime, load_event(event_name, bucket=s3_bucket, keys=[key]), context())
    assert reply == {"documents": [], "ignored": 1}
    assert api.requests == 0
    assert await object_keys(storage, s3_bucket) == [key]


@pytest.mark.parametrize(
    ("key", "data", "error"),
    [
        ("incoming/picture.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "unsupported_document"),
        ("incoming/zeros.txt", b"abc\x00\x00\x00def" * 100, "unsupported_document"),
        ("incoming/blank.md", b"   \n\n  \t \n", "empty_document"),
        ("incoming/broken.json", b'{"text": "unterminated', "unsupported_document"),
        ("incoming/huge.txt", b"word " * 5000, "document_too_large"),
    ],
)
async def test_bad_documents_are_parked_with_a_reason(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    key: str,
    data: bytes,
    error: str,
) -> None:
    runtime = make_runtime(max_source_bytes=20_000)
    await put(storage, s3_bucket, key, data)

    reply = await create(runtime, s3_bucket, key)

    assert reply["documents"][0]["outcome"] == "parked"
    record = await read_json(storage, s3_bucket, f"embeddings/_errors/{key}.json")
    assert record["error"] == error
    assert record["reason"]
    assert record["source"]["key"] == key
    assert await storage.head(s3_bucket, f"embeddings/{key}.manifest.json") is None
    assert api.requests == 0


async def test_parked_document_fixed_by_a_new_upload_clears_its_error(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await put(storage, s3_bucket, KEY, b"   ")
    await create(runtime, s3_bucket, KEY)
    assert await storage.head(s3_bucket, f"embeddings/_errors/{KEY}.json") is not None

    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)

    assert await storage.head(s3_bucket, f"embeddings/_errors/{KEY}.json") is None
    assert await storage.head(s3_bucket, f"embeddings/{KEY}.manifest.json") is not None


async def test_transient_api_failure_raises_and_the_retry_pays_only_for_the_rest(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(embeddings_max_attempts=2)
    texts = expected_chunk_texts(DOCUMENT)
    poisoned = texts[len(texts) // 2]
    api.fail = lambda text: httpx.Response(503) if text == poisoned else None
    await put(storage, s3_bucket, KEY, DOCUMENT)

    with pytest.raises(EmbeddingsError):
        await create(runtime, s3_bucket, KEY)
    assert await storage.head(s3_bucket, f"embeddings/{KEY}.manifest.json") is None
    checkpoint = await object_keys(storage, s3_bucket, f"embeddings/_checkpoints/{KEY}/")
    assert checkpoint

    api.fail = lambda _text: None
    reply = await create(runtime, s3_bucket, KEY)

    assert reply["documents"][0]["outcome"] == "embedded"
    assert max(api.texts.values()) == 1  # no text was paid for twice
    assert set(api.texts) == set(texts)
    assert await object_keys(storage, s3_bucket, "embeddings/_checkpoints/") == []


async def test_deadline_checkpoints_and_the_next_delivery_resumes_to_identical_output(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await put(storage, s3_bucket, KEY, DOCUMENT)
    slow = make_runtime(embeddings_rps=20, deadline_margin_s=0)
    with pytest.raises(OutOfTime):
        await create(slow, s3_bucket, KEY, timeout_s=0.5)
    first_run = api.embedded
    texts = expected_chunk_texts(DOCUMENT)
    assert 0 < first_run < len(set(texts))

    fast = make_runtime()
    reply = await create(fast, s3_bucket, KEY)
    assert reply["documents"][0]["outcome"] == "embedded"
    assert api.embedded == len(set(texts))  # resumed: every text billed once in total
    resumed = await storage.get(s3_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8)

    clean_bucket = "clean-" + s3_bucket[-10:]
    await storage.create_bucket(clean_bucket)
    await put(storage, clean_bucket, KEY, DOCUMENT)
    clean = make_runtime(transports=Transports(embeddings=FakeEmbeddingsAPI().transport))
    await create(clean, clean_bucket, KEY)
    clean_records = await storage.get(clean_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8)
    assert resumed is not None
    assert clean_records is not None
    assert resumed.replace(s3_bucket.encode(), b"B") == clean_records.replace(clean_bucket.encode(), b"B")


async def test_text_refused_as_too_long_is_split_into_more_records(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    api.max_chars = 150
    await put(storage, s3_bucket, KEY, DOCUMENT)

    await create(runtime, s3_bucket, KEY)

    records = await read_json(storage, s3_bucket, f"embeddings/{KEY}.jsonl")
    assert len(records) > len(expected_chunk_texts(DOCUMENT))
    assert all(len(record["text"]) <= 150 for record in records)
    assert [record["chunk"] for record in records] == list(range(len(records)))
    assert all(DOCUMENT[record["start"] : record["end"]] == record["text"] for record in records)


async def test_batch_of_events_is_processed_together(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    keys = ["incoming/a.txt", "incoming/папка с пробелами/b.md", "incoming/c.html", "incoming/missing.txt"]
    await put(storage, s3_bucket, keys[0], "Plain text about apples.\n\nAnd pears.")
    await put(storage, s3_bucket, keys[1], "# Заголовок\n\nТекст о грушах и яблоках.")
    await put(storage, s3_bucket, keys[2], "<html><body><h1>Title</h1><p>Cherries.</p></body></html>")

    reply = await create(runtime, s3_bucket, *keys)

    outcomes = {item["key"]: item["outcome"] for item in reply["documents"]}
    assert outcomes == {keys[0]: "embedded", keys[1]: "embedded", keys[2]: "embedded", keys[3]: "missing"}
    for key in keys[:3]:
        assert await storage.head(s3_bucket, f"embeddings/{key}.manifest.json") is not None


async def test_unsafe_key_is_refused_without_writing(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    reply = await create(runtime, s3_bucket, "incoming/../../etc/passwd")
    assert reply["documents"][0]["outcome"] == "refused"
    # Only the refusal record, named by the key's hash: no output key is derived from the key itself.
    assert [key.rpartition("/")[0] for key in await object_keys(storage, s3_bucket)] == [
        "embeddings/_errors/_refused"
    ]
    assert api.requests == 0


async def test_malformed_storage_message_is_logged_not_raised(runtime: Runtime) -> None:
    event = load_event("storage_object_create")
    del event["messages"][0]["details"]["object_id"]
    assert await dispatch(runtime, event, context()) == {"documents": [], "ignored": 1}


async def test_unknown_event_is_answered_with_its_keys(runtime: Runtime) -> None:
    reply = await dispatch(runtime, {"foo": 1, "bar": []}, context())
    assert reply == {"error": "unrecognised event", "top_level_keys": ["bar", "foo"]}


async def test_an_upload_racing_the_run_supersedes_it_and_the_previous_outputs_stand(
    s3_server: S3Server, runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    """Records are streamed into an upload while embedding; a newer version of the source arriving
    meanwhile aborts that upload, so the records and manifest of the last finished run stay intact."""
    await put(storage, s3_bucket, KEY, DOCUMENT)
    await create(runtime, s3_bucket, KEY)
    records_before = await storage.get(s3_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8)
    manifest_before = await storage.get(s3_bucket, f"embeddings/{KEY}.manifest.json", max_bytes=10**6)
    await put(storage, s3_bucket, KEY, DOCUMENT + "\n\nВторая версия отчёта.")
    third = DOCUMENT + "\n\nТретья версия отчёта."
    auth = sigv4_auth(s3_server.access_key, s3_server.secret_key, s3_server.region)

    def upload_the_third_version(_text: str) -> httpx.Response | None:
        with httpx.Client(auth=auth) as http:  # the fake API answers synchronously, mid-run
            http.put(f"{s3_server.endpoint}/{s3_bucket}/{KEY}", content=third.encode()).raise_for_status()
        api.fail = lambda _text: None
        return None

    api.fail = upload_the_third_version
    reply = await create(runtime, s3_bucket, KEY)

    assert reply["documents"][0]["outcome"] == "superseded"
    assert await storage.get(s3_bucket, f"embeddings/{KEY}.jsonl", max_bytes=10**8) == records_before
    assert await storage.get(s3_bucket, f"embeddings/{KEY}.manifest.json", max_bytes=10**6) == manifest_before
    checkpoint = await object_keys(storage, s3_bucket, f"embeddings/_checkpoints/{KEY}/")
    assert checkpoint  # what the superseded run paid for is kept for the next one
