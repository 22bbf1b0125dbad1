"""Functional: a document's state is its own, and a range is judged against the same range.

Names that continue one another (`a`, `a/b`, `a/b/c`; `x`, `x/y.md`, `x.md`) are different documents
whose outputs and checkpoints live side by side: deleting, resubmitting or reconciling one never
takes another's. The same key in two source buckets that share OUTPUT_BUCKET is two documents. A
tick scoped to one folder touches nothing outside it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devstack.events import timer_event
from devstack.pgserver import PgServer
from embedding_pipeline.bucket_policy import output_layout
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsError
from embedding_pipeline.runtime import Runtime
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI

if TYPE_CHECKING:
    from asyncpg import Connection

from tests.support import RuntimeFactory, call, context, load_event, object_keys, read_json, request_event


async def etags(storage: ObjectStorage, bucket: str, *, containing: tuple[str, ...] = ()) -> dict[str, str]:
    """Key → ETag of every object (whose key contains one of `containing`, if given)."""
    return {
        info.key: info.etag
        async for info in storage.list_objects(bucket)
        if not containing or any(part in info.key for part in containing)
    }


async def deliver(runtime: Runtime, event: str, bucket: str, key: str) -> dict[str, Any]:
    reply = await dispatch(runtime, load_event(event, bucket=bucket, keys=[key]), context())
    result: dict[str, Any] = reply["documents"][0]
    return result


def long_text(name: str) -> str:
    return "\n\n".join(
        f"Paragraph {n} of {name}, long enough to be a chunk of its own." * 8 for n in range(30)
    )


async def test_a_tick_scoped_to_one_folder_leaves_the_other_folders_byte_for_byte(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket)
    for folder in ("a", "b", "c"):
        for number in range(2):
            await storage.put(
                s3_bucket, f"incoming/{folder}/doc-{number}.md", f"# {folder} {number}".encode()
            )
    assert (await dispatch(runtime, timer_event(None), context()))["outcomes"] == {"embedded": 6}
    # Work in every folder: a new document in a/ and c/, a deleted source in b/ (an orphan there).
    await storage.put(s3_bucket, "incoming/a/new.md", b"# a new")
    await storage.put(s3_bucket, "incoming/c/new.md", b"# c new")
    await storage.delete(s3_bucket, "incoming/b/doc-0.md")
    others = await etags(storage, s3_bucket, containing=("incoming/b/", "incoming/c/"))
    paid = api.embedded

    reply = await dispatch(runtime, timer_event({"prefix": "incoming/a/"}), context())

    assert reply["outcomes"] == {"embedded": 1}
    assert api.embedded == paid + 1
    assert api.texts["# a new"] == 1
    assert await etags(storage, s3_bucket, containing=("incoming/b/", "incoming/c/")) == others
    # The full tick does the rest, and pays for nothing the scoped one embedded.
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["outcomes"] == {"embedded": 1}
    assert reply["found"]["orphaned"] == 1
    assert max(api.texts.values()) == 1
    assert await storage.head(s3_bucket, "embeddings/incoming/b/doc-0.md.manifest.json") is None
    assert await storage.head(s3_bucket, "embeddings/incoming/b/doc-1.md.manifest.json") is not None


async def test_the_same_key_in_two_source_buckets_is_two_documents_in_a_shared_output_bucket(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    first, second, output = s3_bucket, f"{s3_bucket}-b", f"{s3_bucket}-out"
    for bucket in (second, output):
        await storage.create_bucket(bucket)
    runtime = make_runtime(source_bucket=first, extra_source_buckets=second, output_bucket=output)
    key = "incoming/same.md"
    await storage.put(first, key, b"# From the first bucket")
    await storage.put(second, key, b"# From the second bucket")

    assert (await deliver(runtime, "storage_object_create", first, key))["outcome"] == "embedded"
    assert (await deliver(runtime, "storage_object_create", second, key))["outcome"] == "embedded"

    # SOURCE_BUCKET's outputs stay where a single-bucket deployment keeps them; the other's have an area.
    mine = await read_json(storage, output, f"embeddings/{key}.manifest.json")
    theirs = await read_json(storage, output, f"embeddings/_buckets/{second}/{key}.manifest.json")
    assert (mine["source"]["bucket"], theirs["source"]["bucket"]) == (first, second)
    records = await read_json(storage, output, f"embeddings/_buckets/{second}/{key}.jsonl")
    assert [record["text"] for record in records] == ["# From the second bucket"]
    before = await etags(storage, output)

    # Reconcile of SOURCE_BUCKET finds nothing to do: the other bucket's outputs are no orphans of it.
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["outcomes"] == {}
    assert reply["found"]["orphaned"] == 0
    assert {k: v for k, v in (await etags(storage, output)).items() if "_buckets/" in k} == {
        k: v for k, v in before.items() if "_buckets/" in k
    }
    # Each bucket's delete removes its own outputs only.
    await storage.delete(second, key)
    assert (await deliver(runtime, "storage_object_delete", second, key))["outcome"] == "removed"
    assert await object_keys(storage, output, f"embeddings/_buckets/{second}/") == []
    assert await storage.head(output, f"embeddings/{key}.manifest.json") is not None
    assert set(api.texts.values()) == {1}


async def test_a_single_bucket_deployment_keeps_its_layout() -> None:
    from embedding_pipeline.outputs.layout import OutputLayout  # noqa: PLC0415
    from embedding_pipeline.settings import load_settings  # noqa: PLC0415

    base = {"yc_folder_id": "b1gtest", "yc_api_key": "AQVNtest-key-0123456789"}
    alone = load_settings(**base, source_bucket="docs", output_bucket="vectors")
    assert output_layout(alone, "docs") == OutputLayout("vectors", "embeddings/")
    beside = load_settings(**base, source_bucket="docs", extra_source_buckets="more")
    # Without OUTPUT_BUCKET every bucket's outputs are beside its sources: nothing is shared.
    assert output_layout(beside, "more") == OutputLayout("more", "embeddings/")
    shared = load_settings(**base, source_bucket="docs", extra_source_buckets="more", output_bucket="vectors")
    assert output_layout(shared, "docs").index_scope == "vectors"
    extra = output_layout(shared, "more")
    assert (extra.prefix, extra.index_scope) == ("embeddings/_buckets/more/", "vectors/more")
    assert extra.document("incoming/a.md").index_scope == "vectors/more"


async def test_nested_inline_ids_keep_their_checkpoints_when_a_shorter_id_is_done_or_resubmitted(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    slow = make_runtime(source_bucket=s3_bucket, embeddings_rps=20, deadline_margin_s=0)
    fast = make_runtime(source_bucket=s3_bucket)
    # `a/b` stops early (its submission and checkpoint parts stay for reconcile); `a/b/c` is done.
    status, body = await call(
        slow,
        request_event("POST", "/v1/documents", {"id": "a/b", "text": long_text("a/b")}, key=None),
        context(timeout_s=0.5),
    )
    assert (status, body["status"]) == (202, "in_progress")
    status, _ = await call(
        fast, request_event("POST", "/v1/documents", {"id": "a/b/c", "text": "c"}, key=None)
    )
    assert status in (200, 202)
    nested = await etags(storage, s3_bucket, containing=("_inline/a/b",))
    assert any(key.endswith("_inline/a/b/submission.json") for key in nested)
    assert any(key.endswith(".jsonl") and "_checkpoints/_inline/a/b/" in key for key in nested)

    # `a` is submitted, done, and resubmitted: each discards `a`'s checkpoint, and only `a`'s.
    for _ in range(2):
        status, body = await call(
            fast, request_event("POST", "/v1/documents", {"id": "a", "text": "a"}, key=None)
        )
        assert status in (200, 202)
        assert await etags(storage, s3_bucket, containing=("_inline/a/b",)) == nested
    status, body = await call(fast, request_event("GET", "/v1/documents/_inline/a/b", key=None))
    assert (status, body["status"]) == (200, "in_progress")

    paid = dict(api.texts)
    reply = await dispatch(fast, timer_event(None), context())
    assert reply["outcomes"] == {"embedded": 1}  # `a/b`, resumed from its own checkpoint
    assert max(api.texts.values()) == 1  # nothing of `a/b` paid twice, `a` and `a/b/c` not again
    assert all(api.texts[text] == count for text, count in paid.items())
    for document in ("_inline/a", "_inline/a/b", "_inline/a/b/c"):
        status, body = await call(fast, request_event("GET", f"/v1/documents/{document}", key=None))
        assert (status, body["status"]) == (200, "embedded"), document


async def test_a_deleted_source_leaves_the_checkpoint_of_the_document_under_its_name(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    runtime = make_runtime(source_bucket=s3_bucket, embeddings_max_attempts=2)
    parent, child, sibling = "incoming/x", "incoming/x/y.md", "incoming/x.md"
    for key in (parent, sibling):
        await storage.put(s3_bucket, key, f"# {key}".encode())
        assert (await deliver(runtime, "storage_object_create", s3_bucket, key))["outcome"] == "embedded"
    # `x/y.md` stops half-way: a text the API keeps failing, its vectors so far checkpointed.
    text = long_text("x/y.md")
    await storage.put(s3_bucket, child, text.encode())
    api.fail = lambda t: httpx.Response(503) if "Paragraph 20 " in t else None
    with pytest.raises(EmbeddingsError):
        await deliver(runtime, "storage_object_create", s3_bucket, child)
    checkpoint = await object_keys(storage, s3_bucket, f"embeddings/_checkpoints/{child}/")
    assert checkpoint
    kept = await etags(storage, s3_bucket, containing=(child, sibling))

    await storage.delete(s3_bucket, parent)
    assert (await deliver(runtime, "storage_object_delete", s3_bucket, parent))["outcome"] == "removed"

    assert await etags(storage, s3_bucket, containing=(child, sibling)) == kept
    assert await storage.head(s3_bucket, f"embeddings/{parent}.manifest.json") is None
    api.fail = lambda _t: None
    assert (await deliver(runtime, "storage_object_create", s3_bucket, child))["outcome"] == "embedded"
    assert max(api.texts.values()) == 1  # the checkpoint of `x/y.md` was its own: nothing paid twice
    manifest = await read_json(storage, s3_bucket, f"embeddings/{child}.manifest.json")
    assert manifest["usage"]["api_requests"] == manifest["chunks"]  # its cost reported whole
    reply = await dispatch(runtime, timer_event(None), context())
    assert (reply["outcomes"], reply["found"]["orphaned"]) == ({}, 0)


async def test_the_index_holds_the_same_key_of_two_buckets_as_two_documents(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    pg_server: PgServer,
    index_table: str,
    vector_db: Connection,
) -> None:
    second, output = f"{s3_bucket}-b", f"{s3_bucket}-out"
    for bucket in (second, output):
        await storage.create_bucket(bucket)
    runtime = make_runtime(
        source_bucket=s3_bucket,
        extra_source_buckets=second,
        output_bucket=output,
        vector_db_dsn=pg_server.dsn,
        vector_db_table=index_table,
    )
    key = "incoming/same.md"
    for bucket in (s3_bucket, second):
        await storage.put(bucket, key, f"# Written in {bucket}".encode())
        assert (await deliver(runtime, "storage_object_create", bucket, key))["index"] == "indexed"

    rows = await vector_db.fetch(
        f"SELECT output_bucket, source_bucket, text FROM {index_table} WHERE document = $1", key
    )
    assert sorted((row["output_bucket"], row["source_bucket"]) for row in rows) == [
        (output, s3_bucket),
        (f"{output}/{second}", second),
    ]
    status, reply = await call(
        runtime, request_event("POST", "/v1/search", {"query": f"# Written in {second}"})
    )
    assert status == 200, reply
    assert {hit["source"]["bucket"] for hit in reply["data"]} == {s3_bucket, second}
    # A reconcile of SOURCE_BUCKET repairs its own index area only: the other bucket's rows stay.
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["index"]["orphaned"] == 0
    await storage.delete(second, key)
    await deliver(runtime, "storage_object_delete", second, key)
    left = await vector_db.fetch(
        f"SELECT output_bucket FROM {index_table} WHERE document = $1",
        key,
    )
    assert [row["output_bucket"] for row in left] == [output]
