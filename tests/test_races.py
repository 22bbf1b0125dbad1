"""Functional: concurrent runs never leave a manifest that vouches for the wrong records.

Each interleaving is forced by a hook in the storage transport (tests/fakes.py: HookedTransport),
which runs once right before a chosen request: an upload between two reads, a second instance
finishing first. Whatever a race leaves behind, the next reconcile detects and repairs.
"""

from __future__ import annotations

import json
from array import array
from typing import Any

import httpx

from devstack.events import timer_event
from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.checkpoints import Checkpoint
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.stages.vectorize import KnownVector
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI, HookedTransport, request_to
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json

KEY = "incoming/race.md"
MANIFEST = f"embeddings/{KEY}.manifest.json"
RECORDS = f"embeddings/{KEY}.jsonl"
VERSION_A = "# Version A\n\nThe first text of the document, about apples."
VERSION_B = "# Version B\n\nThe second text of the document, about bananas."


async def create(runtime: Runtime, bucket: str) -> dict[str, Any]:
    event = load_event("storage_object_create", bucket=bucket, keys=[KEY])
    reply: dict[str, Any] = await dispatch(runtime, event, context())
    document: dict[str, Any] = reply["documents"][0]
    return document


async def record_texts(storage: ObjectStorage, bucket: str) -> list[str]:
    data = await storage.get(bucket, RECORDS, max_bytes=10**7)
    assert data is not None
    return [json.loads(line)["text"] for line in data.splitlines()]


def hooked(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, s3_bucket: str
) -> tuple[Runtime, HookedTransport]:
    transport = HookedTransport()
    runtime = make_runtime(
        source_bucket=s3_bucket, transports=Transports(embeddings=api.transport, storage=transport)
    )
    return runtime, transport


async def test_the_manifest_names_the_version_whose_bytes_were_read(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    """A→B→A: the HEAD sees A, an upload of B lands before the GET, A comes back afterwards. The
    manifest must say B (the text it holds), so that reconcile sees A as a change."""
    await storage.put(s3_bucket, KEY, VERSION_A.encode())
    runtime, transport = hooked(make_runtime, api, s3_bucket)

    async def upload_b(_request: httpx.Request) -> None:
        await storage.put(s3_bucket, KEY, VERSION_B.encode())

    transport.before(request_to("GET", KEY), upload_b)
    assert (await create(runtime, s3_bucket))["outcome"] == "embedded"
    assert transport.fired == [f"GET /{s3_bucket}/{KEY}"]

    version_b = await storage.head(s3_bucket, KEY)
    manifest = await read_json(storage, s3_bucket, MANIFEST)
    assert version_b is not None
    assert manifest["source"]["etag"] == version_b.etag
    assert await record_texts(storage, s3_bucket) == [VERSION_B]

    await storage.put(s3_bucket, KEY, VERSION_A.encode())
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["found"]["stale"] == 1
    assert reply["outcomes"] == {"embedded": 1}
    assert await record_texts(storage, s3_bucket) == [VERSION_A]


async def test_a_run_that_lost_the_race_never_replaces_the_winners_manifest(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    """Instance 1 embeds A. Right before it replaces the records, its claim lapses (a stall: here the
    claim is deleted), B is uploaded and instance 2 embeds it to the end. Instance 1's records
    upload lands over B's, but its manifest is written only if no manifest appeared meanwhile: B's
    manifest stands, now over the wrong records, and names the records' ETag, so reconcile sees the
    mismatch and repairs it."""
    await storage.put(s3_bucket, KEY, VERSION_A.encode())
    first, transport = hooked(make_runtime, api, s3_bucket)
    second = make_runtime(source_bucket=s3_bucket)
    won: list[dict[str, Any]] = []

    async def newer_run_finishes_first(_request: httpx.Request) -> None:
        await storage.delete(s3_bucket, f"embeddings/_claims/{KEY}.json")  # instance 1's claim lapsed
        await storage.put(s3_bucket, KEY, VERSION_B.encode())
        won.append(await create(second, s3_bucket))

    transport.before(request_to("PUT", RECORDS), newer_run_finishes_first)
    lost = await create(first, s3_bucket)

    assert [item["outcome"] for item in won] == ["embedded"]
    assert lost["outcome"] == "superseded"
    version_b = await storage.head(s3_bucket, KEY)
    manifest = await read_json(storage, s3_bucket, MANIFEST)
    assert version_b is not None
    assert manifest["source"]["etag"] == version_b.etag  # the newest version's manifest stands

    records = await storage.head(s3_bucket, RECORDS)
    assert records is not None
    if records.etag != manifest["records"]["etag"]:  # the loser's records landed last: detected
        reply = await dispatch(second, timer_event(None), context())
        assert reply["found"]["stale"] == 1
        assert reply["outcomes"] == {"embedded": 1}
    repaired = await read_json(storage, s3_bucket, MANIFEST)
    records = await storage.head(s3_bucket, RECORDS)
    assert records is not None
    assert repaired["records"]["etag"] == records.etag
    assert await record_texts(storage, s3_bucket) == [VERSION_B]
    again = await dispatch(second, timer_event(None), context())
    assert again["found"]["stale"] == again["found"]["missing"] == 0


async def test_the_source_changing_before_the_records_are_replaced_supersedes_the_run(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    """The last look before replacing the records sees the newer version: nothing is replaced."""
    await storage.put(s3_bucket, KEY, VERSION_A.encode())
    runtime, transport = hooked(make_runtime, api, s3_bucket)
    assert (await create(runtime, s3_bucket))["outcome"] == "embedded"
    manifest_a = await storage.get(s3_bucket, MANIFEST, max_bytes=10**6)
    await storage.put(s3_bucket, KEY, VERSION_B.encode())

    async def upload_a_third(_request: httpx.Request) -> None:
        await storage.put(s3_bucket, KEY, b"# Version C\n\nA third text, about cherries.")

    # A run HEADs the source twice: before reading it, and for the last look before replacing the
    # records. The third version lands in between.
    transport.before(request_to("HEAD", KEY, nth=2), upload_a_third)
    reply = await create(runtime, s3_bucket)
    assert reply["outcome"] == "superseded"
    assert await storage.get(s3_bucket, MANIFEST, max_bytes=10**6) == manifest_a
    assert await record_texts(storage, s3_bucket) == [VERSION_A]


async def test_records_overwritten_behind_the_manifest_are_stale_for_reconcile(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, KEY, VERSION_A.encode())
    runtime = make_runtime(source_bucket=s3_bucket)
    assert (await create(runtime, s3_bucket))["outcome"] == "embedded"
    data = await storage.get(s3_bucket, RECORDS, max_bytes=10**7)
    assert data is not None
    await storage.put(s3_bucket, RECORDS, data + data)  # what a lost race could leave

    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["found"]["stale"] == 1
    assert reply["outcomes"] == {"embedded": 1}
    assert await record_texts(storage, s3_bucket) == [VERSION_A]
    manifest = await read_json(storage, s3_bucket, MANIFEST)
    records = await storage.head(s3_bucket, RECORDS)
    assert records is not None
    assert manifest["records"]["etag"] == records.etag


async def test_overlapping_runs_keep_each_others_checkpoint_parts(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """Two deliveries of one document running at once each checkpoint what they paid for; neither
    overwrites the other's parts, so a third run resumes with both."""
    keys = OutputLayout(s3_bucket, "embeddings/").document(KEY)
    model = "emb://b1gtest/text-search-doc/latest"
    first, second = (Checkpoint(storage, keys, model=model, dimensions=1) for _ in range(2))
    await first.add("a" * 64, Embedding(array("d", [1.0]), 3))
    await second.add("b" * 64, Embedding(array("d", [2.0]), 4))
    await first.flush()
    await second.flush()

    known: dict[str, KnownVector] = {}
    assert await Checkpoint(storage, keys, model=model, dimensions=1).load(known, None) == 2
    assert {text_hash: vector.vector.tolist() for text_hash, vector in known.items()} == {
        "a" * 64: [1.0],
        "b" * 64: [2.0],
    }
    assert all(vector.paid for vector in known.values())  # paid for this version: billed, not reused


async def test_two_deliveries_of_one_version_in_a_batch_pay_once_and_leave_one_manifest(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    text = "\n\n".join(f"Paragraph {n} of a document delivered twice at once." * 5 for n in range(8))
    await storage.put(s3_bucket, KEY, text.encode())
    runtime = make_runtime(source_bucket=s3_bucket)
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[KEY, KEY])

    reply = await dispatch(runtime, event, context())

    # The second waits its turn and finds the document current (outputs/claims.py: one run at a time).
    assert sorted(item["outcome"] for item in reply["documents"]) == ["embedded", "unchanged"]
    assert max(api.texts.values()) == 1  # the two runs shared every request
    manifest = await read_json(storage, s3_bucket, MANIFEST)
    records = await storage.head(s3_bucket, RECORDS)
    assert records is not None
    assert manifest["records"]["etag"] == records.etag
    assert await object_keys(storage, s3_bucket, "embeddings/_checkpoints/") == []
    tick = await dispatch(runtime, timer_event(None), context())
    assert tick["found"]["stale"] == tick["found"]["missing"] == 0
