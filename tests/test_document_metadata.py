"""Document metadata: an object's user metadata (x-amz-meta-*) and its sidecar (`KEY.metadata.json`)
into every record and index row; a metadata-only change rewrites records and manifest with no text
paid for; the sidecar is never a document; a bad sidecar parks its document until it is fixed.

Functional, on SeaweedFS (user metadata and copies in place through real S3 requests), the fake
embeddings API counting every request, and PostgreSQL with pgvector for the rows.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devstack.events import storage_event, timer_event
from devstack.pgserver import PgServer
from devstack.s3server import S3Server
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.output_marks import user_metadata
from embedding_pipeline.clients.s3_requests import S3Requests
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import BadMetadata
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.stages.documents.metadata import parse_sidecar
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, object_keys, read_json
from tests.test_vector_index import HANDBOOK, in_index, rows_of

if TYPE_CHECKING:
    import asyncpg

    Connection = asyncpg.Connection[asyncpg.Record]

DOC = "incoming/handbook.md"
SIDECAR = DOC + ".metadata.json"
TEXT = HANDBOOK  # several chunks at the index tests' chunk size


def encoded_word(text: str) -> str:
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


async def s3_put(
    server: S3Server, bucket: str, key: str, data: bytes = b"", *, meta: dict[str, str], copy: bool = False
) -> None:
    """A PUT carrying user metadata, or (`copy`) a copy of the object onto itself with new user
    metadata: the storage client writes neither, as the pipeline never needs to."""
    headers = {f"x-amz-meta-{name}": value for name, value in meta.items()}
    if copy:
        headers |= {"x-amz-copy-source": f"/{bucket}/{key}", "x-amz-metadata-directive": "REPLACE"}
    auth = sigv4_auth(server.access_key, server.secret_key, server.region)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.put(
            f"{server.endpoint}/{bucket}/{key}", content=data, headers=headers, auth=auth
        )
    assert response.status_code == 200, response.text


async def event(runtime: Runtime, action: str, bucket: str, key: str) -> dict[str, Any]:
    reply = await dispatch(runtime, storage_event(action, bucket, key), context())  # type: ignore[arg-type]
    result: dict[str, Any] = reply["documents"][0] if reply["documents"] else {}
    return result


async def records_metadata(storage: ObjectStorage, bucket: str, key: str = DOC) -> list[dict[str, Any]]:
    return [record["metadata"] for record in await read_json(storage, bucket, f"embeddings/{key}.jsonl")]


@pytest.fixture
def s3_log(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Storage requests by method, as sent (a spy on the real client: storage stays real)."""
    counted: Counter[str] = Counter()
    real = S3Requests.send

    async def spied(self: S3Requests, method: str, *args: Any, **kwargs: Any) -> Any:
        counted[method] += 1
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(S3Requests, "send", spied)
    return counted


@pytest.fixture
def runtime(make_runtime: RuntimeFactory, s3_bucket: str) -> Runtime:
    """An instance whose SOURCE_BUCKET is the test's: timer ticks sweep it."""
    return make_runtime(source_bucket=s3_bucket)


# --- units: the two sources' own rules ---


def test_user_metadata_names_are_lower_case_and_encoded_words_decoded() -> None:
    headers = {
        "X-Amz-Meta-Department": encoded_word("Отдел продаж"),
        "x-amz-meta-plain": "a =? b",
        "x-amz-meta-odd": "=?x-unknown?B?AAA=?=",
        "Content-Type": "text/plain",
    }
    assert user_metadata(headers) == {
        "department": "Отдел продаж",
        "plain": "a =? b",
        "odd": "=?x-unknown?B?AAA=?=",  # not decodable: kept as written
    }


def test_a_sidecar_is_a_flat_object_of_scalars() -> None:
    parsed = parse_sidecar(b'\xef\xbb\xbf{"a": "x", "n": 1.5, "ok": true, "none": null, "big": 7}', "s.json")
    assert parsed == {"a": "x", "n": 1.5, "ok": True, "none": None, "big": 7}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b'{"a": {"b": 1}}', "'a' is an object"),
        (b'{"a": [1]}', "'a' is an array"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": ', "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b'{"a": 1e999}', "not a finite number"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (json.dumps({"a": "x" * 1001}).encode(), "over 1000"),
        (json.dumps({f"k{n}": n for n in range(101)}).encode(), "101 keys"),
        (json.dumps({"k" * 129: 1}).encode(), "over 128 characters"),
        (b'{"": 1}', "a key is empty"),
        (b'{"a\\u0000b": 1}', "control character"),
        (b'{"a": "x\\u0000"}', "NUL"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"embedpipe-area": "x"}', "the function's own"),
        (b" " * (64 * 1024 + 1), "over the sidecar's limit"),
    ],
)
def test_a_bad_sidecar_is_refused_naming_it_and_the_problem(data: bytes, says: str) -> None:
    with pytest.raises(BadMetadata) as refused:
        parse_sidecar(data, SIDECAR)
    assert SIDECAR in str(refused.value)
    assert says in str(refused.value)


# --- functional: records, rows, changes ---


async def test_user_metadata_and_the_sidecar_reach_every_record_and_row_and_the_sidecar_wins(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    s3_server: S3Server,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
    api: FakeEmbeddingsAPI,
) -> None:
    runtime = make_runtime(**in_index(pg_server, index_table, s3_bucket))
    await storage.put(s3_bucket, SIDECAR, json.dumps({"access": "internal", "year": 2026}).encode())
    meta = {"department": encoded_word("Кадры"), "access": "public", "Source-System": "sap"}
    await s3_put(s3_server, s3_bucket, DOC, TEXT.encode(), meta=meta)

    result = await event(runtime, "ObjectCreate", s3_bucket, DOC)

    assert (result["outcome"], result["index"]) == ("embedded", "indexed")
    expected = {"department": "Кадры", "access": "internal", "source-system": "sap", "year": 2026}
    metadata = await records_metadata(storage, s3_bucket)
    assert len(metadata) > 1
    assert all(item == expected for item in metadata)
    rows = await rows_of(vector_db, index_table, DOC)
    assert [json.loads(row["metadata"]) for row in rows] == metadata
    manifest = await read_json(storage, s3_bucket, f"embeddings/{DOC}.manifest.json")
    assert manifest["metadata"] == expected
    assert manifest["sidecar_etag"] == (await storage.head(s3_bucket, SIDECAR)).etag  # type: ignore[union-attr]
    # the sidecar is no document: no outputs of its own, ever
    assert not [key for key in await object_keys(storage, s3_bucket, "embeddings/") if "metadata.json" in key]
    assert api.requests == len(metadata)


async def test_a_rows_own_field_wins_over_document_metadata(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/faq.jsonl"
    lines = [{"text": "Как оформить отпуск?", "id": "q1", "team": "hr"}, {"text": "Где пропуск?", "id": "q2"}]
    await storage.put(s3_bucket, key, "\n".join(json.dumps(line) for line in lines).encode())
    await storage.put(s3_bucket, key + ".metadata.json", b'{"team": "all", "id": "doc", "lang": "ru"}')

    assert (await event(runtime, "ObjectCreate", s3_bucket, key))["outcome"] == "embedded"

    first, second = await records_metadata(storage, s3_bucket, key)
    assert (first["team"], first["id"], first["lang"]) == ("hr", "q1", "ru")
    assert (second["team"], second["id"], second["lang"]) == ("all", "q2", "ru")


@pytest.mark.parametrize("change", ["sidecar_added", "sidecar_changed", "sidecar_removed", "copy_in_place"])
async def test_a_metadata_only_change_rewrites_records_manifest_and_rows_without_an_embedding(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    s3_server: S3Server,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
    api: FakeEmbeddingsAPI,
    s3_log: Counter[str],
    change: str,
) -> None:
    runtime = make_runtime(**in_index(pg_server, index_table, s3_bucket))
    await s3_put(s3_server, s3_bucket, DOC, TEXT.encode(), meta={"access": "public"})
    if change in ("sidecar_changed", "sidecar_removed"):
        await storage.put(s3_bucket, SIDECAR, b'{"level": 1}')
    assert (await event(runtime, "ObjectCreate", s3_bucket, DOC))["outcome"] == "embedded"
    source_etag = (await storage.head(s3_bucket, DOC)).etag  # type: ignore[union-attr]
    vectors = [r["embedding"] for r in await read_json(storage, s3_bucket, f"embeddings/{DOC}.jsonl")]
    paid = api.requests
    if change == "sidecar_added":
        await storage.put(s3_bucket, SIDECAR, b'{"level": 2}')
        action, key, expected = "ObjectCreate", SIDECAR, {"access": "public", "level": 2}
    elif change == "sidecar_changed":
        await storage.put(s3_bucket, SIDECAR, b'{"level": 3}')
        action, key, expected = "ObjectCreate", SIDECAR, {"access": "public", "level": 3}
    elif change == "sidecar_removed":
        await storage.delete(s3_bucket, SIDECAR)
        action, key, expected = "ObjectDelete", SIDECAR, {"access": "public"}
    else:
        await s3_put(s3_server, s3_bucket, DOC, meta={"access": "secret"}, copy=True)
        action, key, expected = "ObjectCreate", DOC, {"access": "secret"}
        # the copy keeps the ETag: only the user metadata tells it apart
        assert (await storage.head(s3_bucket, DOC)).etag == source_etag  # type: ignore[union-attr]
    s3_log.clear()

    result = await event(runtime, action, s3_bucket, key)

    assert (result["outcome"], result["embedded"], result["index"]) == ("embedded", 0, "indexed")
    assert api.requests == paid  # not one embedding request
    measured = dict(s3_log)
    records = await read_json(storage, s3_bucket, f"embeddings/{DOC}.jsonl")
    assert [record["metadata"] for record in records] == [expected] * len(records)
    assert [record["embedding"] for record in records] == vectors
    manifest = await read_json(storage, s3_bucket, f"embeddings/{DOC}.manifest.json")
    assert manifest["metadata"] == expected
    assert manifest["usage"]["api_requests"] == 0
    rows = await rows_of(vector_db, index_table, DOC)
    assert [json.loads(row["metadata"]) for row in rows] == [expected] * len(records)
    # The same event again finds nothing to do.
    assert (await event(runtime, action, s3_bucket, key))["outcome"] == "unchanged"
    assert api.requests == paid
    print(f"metadata-only change ({change}): storage requests {measured}, embedding requests 0")


async def test_an_orphan_sidecar_is_harmless(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, "incoming/nobody.md.metadata.json", b'{"a": 1}')
    await storage.put(s3_bucket, "incoming/bad-orphan.txt.metadata.json", b"[not an object")

    first = await event(runtime, "ObjectCreate", s3_bucket, "incoming/nobody.md.metadata.json")
    second = await event(runtime, "ObjectDelete", s3_bucket, "incoming/bad-orphan.txt.metadata.json")
    tick = await dispatch(runtime, timer_event(None), context())

    assert (first["outcome"], second["outcome"]) == ("missing", "missing")
    assert tick["found"]["sources"] == 0
    assert tick["outcomes"] == {}
    assert await object_keys(storage, s3_bucket, "embeddings/_errors/") == []
    assert api.requests == 0


async def test_a_bad_sidecar_parks_its_document_until_it_is_fixed(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, DOC, TEXT.encode())
    await storage.put(s3_bucket, SIDECAR, b'{"owner": {"name": "nested"}}')

    parked = await event(runtime, "ObjectCreate", s3_bucket, DOC)

    assert parked["outcome"] == "parked"
    assert SIDECAR in parked["reason"]
    assert "'owner' is an object" in parked["reason"]
    error = await read_json(storage, s3_bucket, f"embeddings/_errors/{DOC}.json")
    assert error["error"] == "bad_metadata"
    assert api.requests == 0
    # a sweep leaves it parked while the sidecar stays as it is...
    tick = await dispatch(runtime, timer_event(None), context())
    assert (tick["found"]["parked"], tick["outcomes"]) == (1, {})
    # ...and a fixed sidecar un-parks it, by its event
    await storage.put(s3_bucket, SIDECAR, b'{"owner": "nested"}')
    fixed = await event(runtime, "ObjectCreate", s3_bucket, SIDECAR)
    assert fixed["outcome"] == "embedded"
    assert await storage.head(s3_bucket, f"embeddings/_errors/{DOC}.json") is None
    assert {m["owner"] for m in await records_metadata(storage, s3_bucket)} == {"nested"}


async def test_a_fixed_sidecar_unparks_its_document_at_the_next_sweep(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, DOC, TEXT.encode())
    await storage.put(s3_bucket, SIDECAR, b"\xff\xfe not utf-8")
    first = await dispatch(runtime, timer_event(None), context())
    assert first["outcomes"] == {"parked": 1}
    error = await read_json(storage, s3_bucket, f"embeddings/_errors/{DOC}.json")
    assert SIDECAR in error["reason"]
    assert "not valid UTF-8" in error["reason"]

    await storage.put(s3_bucket, SIDECAR, b'{"ok": true}')  # no event: the sweep finds it
    second = await dispatch(runtime, timer_event(None), context())

    assert second["found"]["parked_retry"] == 1
    assert second["outcomes"] == {"embedded": 1}
    assert {m["ok"] for m in await records_metadata(storage, s3_bucket)} == {True}


async def test_reconcile_finds_a_sidecar_change_and_a_dry_run_prices_it_at_nothing(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, DOC, TEXT.encode())
    await storage.put(s3_bucket, "incoming/other.md", b"# Other\n\nAnother text.")
    assert (await dispatch(runtime, timer_event(None), context()))["outcomes"] == {"embedded": 2}
    assert (await dispatch(runtime, timer_event(None), context()))["outcomes"] == {}  # summaries kept
    paid = api.requests
    await storage.put(s3_bucket, SIDECAR, b'{"level": "restricted"}')  # no event

    dry = await dispatch(runtime, timer_event({"dry_run": True}), context())
    swept = await dispatch(runtime, timer_event(None), context())

    assert dry["found"]["stale"] == 1
    assert dry["outcomes"] == {"would_rewrite": 1}
    assert dry["tokens"] == 0
    assert swept["found"]["stale"] == 1
    assert swept["outcomes"] == {"embedded": 1}
    assert api.requests == paid
    assert {m["level"] for m in await records_metadata(storage, s3_bucket)} == {"restricted"}
    assert (await dispatch(runtime, timer_event(None), context()))["outcomes"] == {}


async def test_documents_and_their_sidecars_share_a_page_whatever_the_boundaries(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small pages: page ends fall beside documents with sidecars (`x`, `x-1`, `x.metadata.json`);
    every document is judged with its own sidecar, so the next sweeps find nothing stale, and the
    steady tick reads no manifest and no document or sidecar."""
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=2)
    for n in range(12):
        key = f"incoming/d{n:02}"
        await storage.put(s3_bucket, key, f"text {n}".encode())
        await storage.put(s3_bucket, f"{key}-1", f"text {n} bis".encode())
        if n % 3:
            await storage.put(s3_bucket, f"{key}.metadata.json", json.dumps({"n": n}).encode())
    # more keys between a document and its sidecar than a page takes: the sidecar is read by name
    for name in ("e", "e-1", "e-2", "e-3", "e-4"):
        await storage.put(s3_bucket, f"incoming/{name}", name.encode())
    await storage.put(s3_bucket, "incoming/e.metadata.json", b'{"n": "e"}')
    first = await dispatch(runtime, timer_event(None), context())
    assert first["found"]["sources"] == 29
    assert first["outcomes"] == {"embedded": 29}

    second = await dispatch(runtime, timer_event(None), context())  # reads manifests, keeps summaries
    read: list[str] = []
    real = ObjectStorage.get_with_info

    async def spied(self: ObjectStorage, bucket: str, key: str, *, max_bytes: int) -> Any:
        read.append(key)
        return await real(self, bucket, key, max_bytes=max_bytes)

    monkeypatch.setattr(ObjectStorage, "get_with_info", spied)
    third = await dispatch(runtime, timer_event(None), context())  # the steady tick

    for again in (second, third):
        assert again["found"]["stale"] == again["found"]["missing"] == 0, again["found"]
        assert again["outcomes"] == {}
    assert [key for key in read if key.endswith(".manifest.json")] == []  # sidecars or not
    assert [key for key in read if key.startswith("incoming/")] == []
    assert api.requests == 29
    assert await records_metadata(storage, s3_bucket, "incoming/e") == [{"n": "e"}]
    for n in (1, 2, 4):
        assert await records_metadata(storage, s3_bucket, f"incoming/d{n:02}") == [{"n": n}]
