"""Functional: the vector index in a real PostgreSQL with pgvector (tests/postgres.py), following a real
SeaweedFS bucket: rows after manifests, deletes, failures that lose nothing, drift repair, search."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest

from devstack.events import timer_event
from devstack.pgserver import PgServer
from devstack.s3server import free_port
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import ConfigurationError, DocumentBusy, VectorIndexError
from embedding_pipeline.outputs.models import Manifest
from embedding_pipeline.pipeline.reconcile.reindex import rebuild_index
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import load_settings
from embedding_pipeline.vector_index.follow import write_document
from embedding_pipeline.vector_index.postgres import VectorIndex
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

HANDBOOK = (
    "# Отпуск\n\nЕжегодный оплачиваемый отпуск составляет двадцать восемь календарных дней. "
    "Заявление подают за две недели.\n\n"
    "# Командировки\n\nКомандировку оформляют приказом; суточные выплачивают за каждый день в пути.\n\n"
    "# Оборудование\n\nНоутбук выдают в первый рабочий день, пропуск оформляет служба безопасности."
)
COFFEE = (
    "Descaling the coffee machine: fill the tank with descaler, run the cleaning programme, "
    "then rinse twice with fresh water. Do it every two months."
)


def in_index(pg_server: PgServer, index_table: str, s3_bucket: str, **overrides: Any) -> dict[str, Any]:
    return {
        "source_bucket": s3_bucket,
        "vector_db_dsn": pg_server.dsn,
        "vector_db_table": index_table,
        "chunk_max_tokens": 40,
        **overrides,
    }


@pytest.fixture
def indexed(make_runtime: RuntimeFactory, pg_server: PgServer, index_table: str, s3_bucket: str) -> Runtime:
    """A function instance with the vector index configured (small chunks: several per document)."""
    return make_runtime(**in_index(pg_server, index_table, s3_bucket))


def unreachable_dsn() -> str:
    return f"postgresql://embedpipe:pgvector-local-secret@127.0.0.1:{free_port()}/vectors"


async def upload(
    runtime: Runtime, storage: ObjectStorage, bucket: str, key: str, text: str
) -> dict[str, Any]:
    await storage.put(bucket, key, text.encode())
    reply = await dispatch(runtime, load_event("storage_object_create", bucket=bucket, keys=[key]), context())
    result: dict[str, Any] = reply["documents"][0]
    return result


async def delete(runtime: Runtime, storage: ObjectStorage, bucket: str, key: str) -> dict[str, Any]:
    await storage.delete(bucket, key)
    reply = await dispatch(runtime, load_event("storage_object_delete", bucket=bucket, keys=[key]), context())
    result: dict[str, Any] = reply["documents"][0]
    return result


async def rows_of(db: Connection, table: str, document: str) -> list[asyncpg.Record]:
    return await db.fetch(
        f"SELECT *, vector_dims(embedding) AS dims FROM {table} WHERE document = $1 ORDER BY chunk", document
    )


async def documents_in(db: Connection, table: str) -> dict[str, str]:
    """document → its records ETag, as the index holds them."""
    found = await db.fetch(f"SELECT DISTINCT document, records_etag FROM {table}")
    return {row["document"]: row["records_etag"] for row in found}


async def test_an_upload_is_indexed_once_its_manifest_stands(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    result = await upload(indexed, storage, s3_bucket, "incoming/handbook.md", HANDBOOK)
    assert (result["outcome"], result["index"]) == ("embedded", "indexed")
    manifest = await read_json(storage, s3_bucket, "embeddings/incoming/handbook.md.manifest.json")
    records = await read_json(storage, s3_bucket, "embeddings/incoming/handbook.md.jsonl")
    rows = await rows_of(vector_db, index_table, "incoming/handbook.md")
    assert len(rows) == manifest["chunks"] == len(records) > 1
    for row, record in zip(rows, records, strict=True):
        assert row["id"] == record["id"] == f"incoming/handbook.md#{row['chunk']}"
        assert (row["text"], row["start_offset"], row["end_offset"]) == (
            record["text"],
            record["start"],
            record["end"],
        )
        assert (row["source_bucket"], row["source_key"]) == (s3_bucket, "incoming/handbook.md")
        assert row["source_etag"] == manifest["source"]["etag"]
        assert row["records_etag"] == manifest["records"]["etag"]
        assert row["model"] == manifest["model"] == "emb://b1gtest/text-search-doc/latest"
        assert json.loads(row["metadata"]) == record["metadata"]
        assert row["dims"] == 256
    indexes = await vector_db.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = $1", index_table)
    assert any("hnsw" in row["indexdef"] and "vector_cosine_ops" in row["indexdef"] for row in indexes)
    # A small model (mid-migration) and a narrow prefix are answered exactly, through btrees.
    assert any("(model)" in row["indexdef"] for row in indexes)
    assert any("(document text_pattern_ops)" in row["indexdef"] for row in indexes)


async def test_a_reupload_replaces_the_rows_and_a_delete_removes_them(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    key = "incoming/handbook.md"
    await upload(indexed, storage, s3_bucket, key, HANDBOOK)
    await upload(indexed, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    edited = (
        HANDBOOK.replace("двадцать восемь", "тридцать один") + "\n\n# Обучение\n\nКурсы оплачивает компания."
    )
    result = await upload(indexed, storage, s3_bucket, key, edited)
    assert result["index"] == "indexed"
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    rows = await rows_of(vector_db, index_table, key)
    assert len(rows) == manifest["chunks"]
    assert {row["records_etag"] for row in rows} == {manifest["records"]["etag"]}
    assert any("тридцать один" in row["text"] for row in rows)
    assert not any("двадцать восемь" in row["text"] for row in rows)

    removed = await delete(indexed, storage, s3_bucket, key)
    assert removed["outcome"] == "removed"
    assert await rows_of(vector_db, index_table, key) == []
    assert list(await documents_in(vector_db, index_table)) == ["incoming/coffee.txt"]


async def test_inline_texts_are_indexed_with_their_metadata(
    indexed: Runtime, vector_db: Connection, index_table: str
) -> None:
    body = {"id": "faq-7", "text": "Как оформить отпуск? Через портал.", "metadata": {"lang": "ru"}}
    status, reply = await call(indexed, request_event("POST", "/v1/documents", body))
    assert status == 202, reply
    rows = await rows_of(vector_db, index_table, "_inline/faq-7")
    assert [(row["id"], json.loads(row["metadata"])) for row in rows] == [("faq-7#0", {"lang": "ru"})]


async def test_search_returns_the_nearest_chunks_with_their_provenance(
    indexed: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
) -> None:
    await upload(indexed, storage, s3_bucket, "incoming/hr/handbook.md", HANDBOOK)
    await upload(indexed, storage, s3_bucket, "incoming/kitchen/coffee.txt", COFFEE)
    records = await read_json(storage, s3_bucket, "embeddings/incoming/hr/handbook.md.jsonl")
    target = records[1]
    calls = api.requests
    # The fake API's vector depends on the text alone: a chunk's own text is its nearest neighbour.
    status, reply = await call(
        indexed, request_event("POST", "/v1/search", {"query": target["text"], "top_k": 3})
    )
    assert status == 200, reply
    assert api.requests == calls + 1  # one request: the query
    assert reply["object"] == "list"
    assert reply["model"] == "emb://b1gtest/text-search-query/latest"
    assert reply["usage"]["prompt_tokens"] > 0
    assert len(reply["data"]) == 3
    best = reply["data"][0]
    assert best["id"] == target["id"]
    # Hybrid by default: first on both sides, so the fused score is 2 / (60 + 1).
    assert (best["vector_rank"], best["keyword_rank"]) == (1, 1)
    assert best["score"] == pytest.approx(2 / 61, abs=1e-6)
    assert best["vector_score"] == pytest.approx(1.0, abs=1e-5)
    assert best["text"] == target["text"]
    assert (best["start"], best["end"], best["chunk"]) == (target["start"], target["end"], target["chunk"])
    assert best["source"] == {
        "bucket": s3_bucket,
        "key": "incoming/hr/handbook.md",
        "etag": target["source"]["etag"],
    }
    assert best["metadata"] == target["metadata"]
    scores = [hit["score"] for hit in reply["data"]]
    assert scores == sorted(scores, reverse=True)

    status, reply = await call(
        indexed, request_event("POST", "/v1/search", {"query": target["text"], "prefix": "incoming/kitchen/"})
    )
    assert status == 200, reply
    assert {hit["source"]["key"] for hit in reply["data"]} == {"incoming/kitchen/coffee.txt"}


async def test_search_filters_on_metadata(indexed: Runtime) -> None:
    for number, lang in enumerate(["ru", "en", "ru"]):
        body = {"id": f"note-{number}", "text": f"Заметка номер {number}", "metadata": {"lang": lang}}
        assert (await call(indexed, request_event("POST", "/v1/documents", body)))[0] == 202
    status, reply = await call(
        indexed,
        request_event(
            "POST", "/v1/search", {"query": "Заметка номер 1", "filter": {"lang": "ru"}, "top_k": 5}
        ),
    )
    assert status == 200, reply
    assert sorted(hit["id"] for hit in reply["data"]) == ["note-0#0", "note-2#0"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"query": "отпуск", "top_k": 101}, 400, "top_k_too_large"),
        ({"query": "отпуск", "top_k": 0}, 400, "invalid_request"),
        ({"query": "отпуск", "top_k": "10"}, 400, "invalid_request"),
        ({"query": "   "}, 400, "invalid_request"),
        ({"top_k": 3}, 400, "invalid_request"),
        ({"query": "отпуск", "topk": 3}, 400, "invalid_request"),
        ({"query": "отпуск", "filter": ["lang"]}, 400, "invalid_request"),
        ("not json", 400, "invalid_json"),
    ],
)
async def test_bad_searches_get_a_clear_400(
    indexed: Runtime, api: FakeEmbeddingsAPI, body: Any, status: int, code: str
) -> None:
    got, reply = await call(indexed, request_event("POST", "/v1/search", body))
    assert (got, reply["error"]["code"]) == (status, code)
    assert reply["error"]["message"]
    assert api.requests == 0  # refused before anything is paid for


async def test_search_without_an_index_is_501_and_with_it_down_503(
    make_runtime: RuntimeFactory, s3_bucket: str
) -> None:
    plain = make_runtime(source_bucket=s3_bucket)
    status, reply = await call(plain, request_event("POST", "/v1/search", {"query": "отпуск"}))
    assert (status, reply["error"]["code"]) == (501, "index_not_configured")
    assert "VECTOR_DB_DSN" in reply["error"]["message"]

    down = make_runtime(source_bucket=s3_bucket, vector_db_dsn=unreachable_dsn())
    status, reply = await call(down, request_event("POST", "/v1/search", {"query": "отпуск"}))
    assert (status, reply["error"]["code"], reply["error"]["type"]) == (503, "index_unavailable", "api_error")


async def test_search_needs_an_api_key(
    make_runtime: RuntimeFactory, pg_server: PgServer, index_table: str, s3_bucket: str
) -> None:
    runtime = make_runtime(**in_index(pg_server, index_table, s3_bucket), http_api_keys="test-key-1")
    status, reply = await call(runtime, request_event("POST", "/v1/search", {"query": "отпуск"}, key=None))
    assert (status, reply["error"]["code"]) == (401, "missing_api_key")
    status, _ = await call(runtime, request_event("POST", "/v1/search", {"query": "отпуск"}))
    assert status == 200


async def test_a_failed_index_write_keeps_the_outputs_and_reconcile_writes_it_later(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
    capsys: pytest.CaptureFixture[str],
) -> None:
    down = make_runtime(**in_index(pg_server, index_table, s3_bucket, vector_db_dsn=unreachable_dsn()))
    result = await upload(down, storage, s3_bucket, "incoming/handbook.md", HANDBOOK)
    assert (result["outcome"], result["index"]) == ("embedded", "pending")
    manifest = await read_json(storage, s3_bucket, "embeddings/incoming/handbook.md.manifest.json")
    marker = await read_json(storage, s3_bucket, "embeddings/_index/incoming/handbook.md.json")
    assert marker["records_etag"] == manifest["records"]["etag"]
    assert "writing the index" in marker["reason"]
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["level"] for line in logged if line["msg"] == "index_write_failed"] == ["ERROR"]

    up = make_runtime(**in_index(pg_server, index_table, s3_bucket))
    report = await dispatch(up, timer_event(None), context())
    assert report["index"]["missing"] == 1
    assert report["index"]["written"] == 1
    assert report["outcomes"] == {}  # nothing was embedded again: the records were complete
    rows = await rows_of(vector_db, index_table, "incoming/handbook.md")
    assert len(rows) == manifest["chunks"]
    assert "embeddings/_index/incoming/handbook.md.json" not in await object_keys(storage, s3_bucket)


async def test_a_marked_document_is_written_again_even_if_its_rows_look_current(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    """A mark is the writer's word that the index missed a version: reconcile trusts it."""
    await upload(indexed, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    await vector_db.execute(f"UPDATE {index_table} SET text = 'damaged'")
    await storage.put(
        s3_bucket,
        "embeddings/_index/incoming/coffee.txt.json",
        b'{"records_etag": null, "reason": "test", "marked_at": "2026-11-29T00:00:00Z"}',
    )
    report = await dispatch(indexed, timer_event(None), context())
    assert (report["index"]["stale"], report["index"]["written"]) == (1, 1)
    records = await read_json(storage, s3_bucket, "embeddings/incoming/coffee.txt.jsonl")
    rows = await rows_of(vector_db, index_table, "incoming/coffee.txt")
    assert [row["text"] for row in rows] == [record["text"] for record in records]
    assert "embeddings/_index/incoming/coffee.txt.json" not in await object_keys(storage, s3_bucket)


async def test_reconcile_repairs_drift_and_a_dry_run_only_reports_it(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    await upload(indexed, storage, s3_bucket, "incoming/handbook.md", HANDBOOK)
    await upload(indexed, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    await upload(indexed, storage, s3_bucket, "incoming/third.txt", "Третий документ о графике отпусков.")
    truth = await documents_in(vector_db, index_table)
    # Rows of an older version, a document whose rows are lost, rows whose document is gone:
    await vector_db.execute(
        f"UPDATE {index_table} SET records_etag = 'old' WHERE document = 'incoming/coffee.txt'"
    )
    await vector_db.execute(f"DELETE FROM {index_table} WHERE document = 'incoming/third.txt'")
    await vector_db.execute(
        f"INSERT INTO {index_table} SELECT output_bucket, 'incoming/gone.md', chunk, id, source_bucket,"
        f" 'incoming/gone.md', source_etag, records_etag, model, text, start_offset, end_offset, metadata,"
        f" embedding FROM {index_table} WHERE document = 'incoming/handbook.md'"
    )
    tampered = await documents_in(vector_db, index_table)

    dry = await dispatch(indexed, timer_event({"dry_run": True}), context())
    assert {k: dry["index"][k] for k in ("stale", "missing", "orphaned", "written", "removed")} == {
        "stale": 1,
        "missing": 1,
        "orphaned": 1,
        "written": 0,
        "removed": 0,
    }
    assert await documents_in(vector_db, index_table) == tampered

    report = await dispatch(indexed, timer_event(None), context())
    assert (report["index"]["written"], report["index"]["removed"], report["index"]["failed"]) == (2, 1, 0)
    assert await documents_in(vector_db, index_table) == truth
    again = await dispatch(indexed, timer_event(None), context())
    assert {k: again["index"][k] for k in ("stale", "missing", "orphaned", "written")} == {
        "stale": 0,
        "missing": 0,
        "orphaned": 0,
        "written": 0,
    }


async def test_reconcile_goes_on_when_the_index_is_down_and_repairs_it_after(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
) -> None:
    up = make_runtime(**in_index(pg_server, index_table, s3_bucket))
    await upload(up, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    down = make_runtime(**in_index(pg_server, index_table, s3_bucket, vector_db_dsn=unreachable_dsn()))
    await storage.put(s3_bucket, "incoming/handbook.md", HANDBOOK.encode())
    # A delete while the index is down: the outputs go, the rows stay for reconcile to find.
    assert (await delete(down, storage, s3_bucket, "incoming/coffee.txt"))["outcome"] == "removed"

    report = await dispatch(down, timer_event(None), context())
    assert report["outcomes"] == {"embedded": 1}  # the bucket's own work does not wait for the index
    assert "writing the index" not in report["index"]["error"]  # the summary failed first
    assert "reading the index" in report["index"]["error"]
    assert "pgvector-local-secret" not in json.dumps(report)

    healed = await dispatch(up, timer_event(None), context())
    assert (healed["index"]["written"], healed["index"]["removed"]) == (1, 1)
    assert list(await documents_in(vector_db, index_table)) == ["incoming/handbook.md"]


async def test_a_write_for_a_manifest_that_was_replaced_changes_nothing(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    """The late writer of a lost race: its records are no longer the ones the manifest vouches for."""
    key = "incoming/coffee.txt"
    await upload(indexed, storage, s3_bucket, key, COFFEE)
    old = Manifest.model_validate(await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json"))
    await upload(indexed, storage, s3_bucket, key, COFFEE + " Use filtered water.")
    current = await documents_in(vector_db, index_table)
    assert indexed.vector_index is not None
    async with indexed.invocation(context(), "unknown") as invocation:
        outputs = invocation.outputs(s3_bucket).document(key)
        assert await write_document(indexed.vector_index, invocation.storage, outputs, old) == "stale"

        async def no_longer_current() -> bool:
            return False

        async def rows() -> Any:
            yield ("b", key, 0, "x#0", "b", key, None, "etag", "m", "text", 0, 4, "{}", [0.0] * 256)

        replaced = await indexed.vector_index.replace(s3_bucket, key, rows(), still_current=no_longer_current)
    assert replaced is None
    assert await documents_in(vector_db, index_table) == current  # rolled back whole


async def test_overlapping_deliveries_of_one_key_leave_the_rows_of_the_manifest_that_stands(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    key = "incoming/handbook.md"
    await storage.put(s3_bucket, key, HANDBOOK.encode())
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
    replies = await asyncio.gather(
        *(dispatch(indexed, event, context()) for _ in range(3)), return_exceptions=True
    )
    # One run embeds; the others find its claim and are told to come again, as the trigger does.
    busy = [reply for reply in replies if isinstance(reply, BaseException)]
    assert all(isinstance(reply, DocumentBusy) for reply in busy)
    for _ in busy:
        assert (await dispatch(indexed, event, context()))["documents"][0]["outcome"] == "unchanged"
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    assert await documents_in(vector_db, index_table) == {key: manifest["records"]["etag"]}
    assert len(await rows_of(vector_db, index_table, key)) == manifest["chunks"]


async def test_rebuild_recreates_the_table_from_the_bucket(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    await upload(indexed, storage, s3_bucket, "incoming/handbook.md", HANDBOOK)
    await upload(indexed, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    truth = await documents_in(vector_db, index_table)
    count = await vector_db.fetchval(f"SELECT count(*) FROM {index_table}")
    await vector_db.execute(f"UPDATE {index_table} SET text = 'damaged'")
    async with indexed.invocation(context(), "unknown") as invocation:
        report = await rebuild_index(invocation, s3_bucket, recreate=True)
    assert (report["written"], report["failed"], report["stopped_by"]) == (2, 0, None)
    assert await documents_in(vector_db, index_table) == truth
    assert await vector_db.fetchval(f"SELECT count(*) FROM {index_table}") == count
    assert await vector_db.fetchval(f"SELECT count(*) FROM {index_table} WHERE text = 'damaged'") == 0


async def test_the_function_creates_the_extension_when_it_may(
    pg_server: PgServer, vector_db: Connection, index_table: str
) -> None:
    database = f"fresh_{index_table}"
    await vector_db.execute(f"CREATE DATABASE {database}")
    try:
        index = VectorIndex(
            pg_server.dsn_for(database, superuser=True), password=None, table=index_table, dimensions=8
        )
        assert await index.summary("bucket") == {}
        await index.aclose()
        fresh = await asyncpg.connect(pg_server.dsn_for(database, superuser=True))
        try:
            assert (
                await fresh.fetchval("SELECT extname FROM pg_extension WHERE extname = 'vector'") == "vector"
            )
        finally:
            await fresh.close()
    finally:
        await vector_db.execute(f"DROP DATABASE {database} WITH (FORCE)")


async def test_a_database_without_the_extension_says_what_to_do(
    pg_server: PgServer, vector_db: Connection, index_table: str
) -> None:
    database = f"bare_{index_table}"
    await vector_db.execute(f"CREATE DATABASE {database} OWNER embedpipe")
    try:
        index = VectorIndex(pg_server.dsn_for(database), password=None, table=index_table, dimensions=8)
        with pytest.raises(VectorIndexError, match="`vector` extension is not enabled"):
            await index.summary("bucket")
        await index.aclose()
    finally:
        await vector_db.execute(f"DROP DATABASE {database} WITH (FORCE)")


async def test_a_change_of_dimensions_is_refused_until_the_table_is_rebuilt(
    pg_server: PgServer, index_table: str
) -> None:
    first = VectorIndex(pg_server.dsn, password=None, table=index_table, dimensions=256)
    await first.summary("bucket")
    await first.aclose()
    other = VectorIndex(pg_server.dsn, password=None, table=index_table, dimensions=384)
    with pytest.raises(VectorIndexError, match=r"vector\(256\).*EMBEDDINGS_DIMENSIONS=384.*--recreate"):
        await other.summary("bucket")
    await other.drop()
    assert await other.summary("bucket") == {}
    await other.aclose()


async def test_a_wrong_password_is_refused_and_never_repeated(pg_server: PgServer, index_table: str) -> None:
    dsn = pg_server.dsn.replace("pgvector-local-secret", "wrong-password-x1")
    index = VectorIndex(dsn, password=None, table=index_table, dimensions=8)
    with pytest.raises(VectorIndexError) as raised:
        await index.summary("bucket")
    assert "password authentication failed" in str(raised.value)
    assert "wrong-password-x1" not in str(raised.value)
    # VECTOR_DB_PASSWORD (from Lockbox) replaces the DSN's.
    fixed = VectorIndex(dsn, password="pgvector-local-secret", table=index_table, dimensions=8)
    assert await fixed.summary("bucket") == {}
    await fixed.aclose()


@pytest.mark.parametrize(
    ("name", "value"),
    [("VECTOR_DB_DSN", "mysql://user:hunter2@db/x"), ("VECTOR_DB_TABLE", "chunks; DROP TABLE x")],
)
def test_bad_index_settings_fail_at_cold_start_without_echoing_them(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name) as raised:
        load_settings(**{name.lower(): value})
    assert "hunter2" not in str(raised.value)


async def test_what_postgresql_would_refuse_never_reaches_it(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str, vector_db: Connection, index_table: str
) -> None:
    """NUL in a text or a metadata value (jsonb and text refuse it) is dropped; a damaged records line
    (a vector of another length, not JSON) is skipped: the rest of the document is still indexed."""
    lines = [
        {"text": "первая запись\u0000 с нулём", "tag": "a\u0000b"},
        {"text": "вторая запись", "tag": "c"},
        {"text": "третья запись", "tag": "d"},
    ]
    body = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines)
    result = await upload(indexed, storage, s3_bucket, "incoming/notes.jsonl", body)
    assert result["index"] == "indexed"
    rows = await rows_of(vector_db, index_table, "incoming/notes.jsonl")
    assert [row["text"] for row in rows] == ["первая запись с нулём", "вторая запись", "третья запись"]
    assert json.loads(rows[0]["metadata"])["tag"] == "ab"

    records_key = "embeddings/incoming/notes.jsonl.jsonl"
    records = await read_json(storage, s3_bucket, records_key)
    records[1]["embedding"] = [0.5, 0.5, 0.5]
    tampered = [json.dumps(record, ensure_ascii=False) for record in records]
    tampered.insert(2, "{not json")
    etag = await storage.put(s3_bucket, records_key, "\n".join(tampered).encode())
    manifest_key = "embeddings/incoming/notes.jsonl.manifest.json"
    manifest = Manifest.model_validate(await read_json(storage, s3_bucket, manifest_key))
    manifest.records.etag = etag
    await storage.put(s3_bucket, manifest_key, manifest.model_dump_json().encode())
    assert indexed.vector_index is not None
    async with indexed.invocation(context(), "unknown") as invocation:
        outputs = invocation.outputs(s3_bucket).document("incoming/notes.jsonl")
        # Written without the two lines it cannot take, and said so: never "indexed" whole.
        assert await write_document(indexed.vector_index, invocation.storage, outputs, manifest) == "partial"
    rows = await rows_of(vector_db, index_table, "incoming/notes.jsonl")
    assert [row["chunk"] for row in rows] == [0, 2]


async def test_a_dry_run_creates_nothing_in_the_database(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
) -> None:
    runtime = make_runtime(**in_index(pg_server, index_table, s3_bucket))
    await storage.put(s3_bucket, "incoming/coffee.txt", COFFEE.encode())
    report = await dispatch(runtime, timer_event({"dry_run": True}), context())
    assert report["index"]["documents"] == 0
    assert await vector_db.fetchval("SELECT to_regclass($1)", index_table) is None


async def test_a_reply_too_large_for_the_platform_is_refused_with_a_reason(
    indexed: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    """Metadata is the uploader's: 100 hits of 40 KB each would not fit a reply (API Gateway: 2.5 MB)."""
    lines = [json.dumps({"text": f"запись номер {n}", "note": "x" * 40_000}) for n in range(100)]
    await upload(indexed, storage, s3_bucket, "incoming/big-meta.jsonl", "\n".join(lines))
    status, reply = await call(
        indexed, request_event("POST", "/v1/search", {"query": "запись", "top_k": 100})
    )
    assert (status, reply["error"]["code"]) == (413, "reply_too_large")
    status, reply = await call(indexed, request_event("POST", "/v1/search", {"query": "запись", "top_k": 10}))
    assert (status, len(reply["data"])) == (200, 10)


async def test_a_malformed_dsn_is_an_index_error_that_keeps_its_password(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    runtime = make_runtime(
        source_bucket=s3_bucket, vector_db_dsn="postgresql://u:pgvector-local-secret@127.0.0.1:port/db"
    )
    result = await upload(runtime, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    assert (result["outcome"], result["index"]) == ("embedded", "pending")
    marker = await read_json(storage, s3_bucket, "embeddings/_index/incoming/coffee.txt.json")
    assert "VECTOR_DB_DSN is not usable" in marker["reason"]


@pytest.fixture
def silent_database() -> Iterator[str]:
    """A DSN whose server accepts connections and never answers: a database hung near the deadline."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield f"postgresql://embedpipe:pgvector-local-secret@127.0.0.1:{server.getsockname()[1]}/vectors"


async def test_a_hung_index_costs_no_more_than_the_time_left(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, silent_database: str
) -> None:
    """The write gives up at the deadline and marks the document; a search answers 503 in time."""
    runtime = make_runtime(source_bucket=s3_bucket, vector_db_dsn=silent_database)
    await storage.put(s3_bucket, "incoming/coffee.txt", COFFEE.encode())
    event = load_event("storage_object_create", bucket=s3_bucket, keys=["incoming/coffee.txt"])
    started = time.monotonic()
    reply = await dispatch(runtime, event, context(timeout_s=4))
    assert time.monotonic() - started < 4
    assert (reply["documents"][0]["outcome"], reply["documents"][0]["index"]) == ("embedded", "pending")
    marker = await read_json(storage, s3_bucket, "embeddings/_index/incoming/coffee.txt.json")
    assert marker["reason"] == "the invocation's time ran out"

    started = time.monotonic()
    status, answer = await call(
        runtime, request_event("POST", "/v1/search", {"query": "coffee"}), context(timeout_s=4)
    )
    assert time.monotonic() - started < 4
    assert (status, answer["error"]["code"]) == (503, "index_unavailable")


async def test_documents_finishing_together_open_one_pool(
    pg_server: PgServer, index_table: str, vector_db: Connection
) -> None:
    """A batch's documents reach the index at once: the first use makes one pool, not one each."""
    count = "SELECT count(*) FROM pg_stat_activity WHERE usename = 'embedpipe'"
    before = await vector_db.fetchval(count)
    index = VectorIndex(pg_server.dsn, password=None, table=index_table, dimensions=8)
    try:
        await asyncio.gather(*(index.summary("bucket") for _ in range(4)))
        assert await vector_db.fetchval(count) - before <= 2  # the pool's size
    finally:
        await index.aclose()


async def test_a_change_of_dimensions_then_a_recreated_index_is_searchable(
    make_runtime: RuntimeFactory,
    pg_server: PgServer,
    index_table: str,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
) -> None:
    """EMBEDDINGS_DIMENSIONS 256 → 384 with a model that gives 384: reconcile re-embeds every text
    (no 256-long vector reused), and `reindex --recreate` leaves every row, searchable."""
    key = "incoming/handbook.md"
    with YandexEmulator(EmulatorConfig(rps=10**6, dimensions=256)) as small:
        before = make_runtime(
            **in_index(pg_server, index_table, s3_bucket, embeddings_url=small.url), transports=Transports()
        )
        await upload(before, storage, s3_bucket, key, HANDBOOK)
    with YandexEmulator(EmulatorConfig(rps=10**6, dimensions=384)) as large:
        after = make_runtime(
            **in_index(
                pg_server, index_table, s3_bucket, embeddings_url=large.url, embeddings_dimensions=384
            ),
            transports=Transports(),
        )
        reply = await dispatch(after, timer_event(None), context())
        assert reply["outcomes"] == {"embedded": 1}
        async with after.invocation(context(), "unknown") as invocation:
            report = await rebuild_index(invocation, s3_bucket, recreate=True)
        manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
        assert (report["written"], report["written_partly"], report["failed"]) == (1, 0, 0)
        assert len(await rows_of(vector_db, index_table, key)) == manifest["chunks"]
        status, found = await call(
            after, request_event("POST", "/v1/search", {"query": "vacation", "top_k": 1})
        )
    assert status == 200
    assert found["data"][0]["document"] == key


async def test_reconcile_fills_the_keyword_form_of_older_rows_without_embedding(
    indexed: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    vector_db: Connection,
    index_table: str,
    api: FakeEmbeddingsAPI,
) -> None:
    """Rows written before keyword search have no `fts`: the timer fills them from their own text."""
    await upload(indexed, storage, s3_bucket, "incoming/handbook.md", HANDBOOK)
    await upload(indexed, storage, s3_bucket, "incoming/coffee.txt", COFFEE)
    await vector_db.execute(f"UPDATE {index_table} SET fts = NULL, lang_config = NULL")  # as an older table
    paid = api.requests

    dry = await dispatch(indexed, timer_event({"dry_run": True}), context())
    assert dry["index"]["keywords_filled"] == 0  # a dry run writes nothing
    assert await vector_db.fetchval(f"SELECT count(*) FROM {index_table} WHERE fts IS NULL") > 0

    report = await dispatch(indexed, timer_event(None), context())
    rows = await vector_db.fetchval(f"SELECT count(*) FROM {index_table}")
    assert report["index"]["keywords_filled"] == rows
    assert await vector_db.fetchval(f"SELECT count(*) FROM {index_table} WHERE fts IS NULL") == 0
    assert api.requests == paid  # from the rows' own text: nothing embedded
    again = await dispatch(indexed, timer_event(None), context())
    assert again["index"]["keywords_filled"] == 0
