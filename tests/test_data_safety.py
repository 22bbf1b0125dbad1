"""Functional: no mode and no mistake destroys good outputs.

A dry run writes nothing at all; a configuration problem (credentials, roles, the model) stops the
run and parks or deletes nothing; a new version that cannot be embedded leaves the previous outputs
in place, with an error record beside them.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsAuthError
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, context, load_event, read_json, request_event

KEPT = "incoming/kept.md"
CHANGED = "incoming/changed.md"
MANIFEST = f"embeddings/{CHANGED}.manifest.json"
RECORDS = f"embeddings/{CHANGED}.jsonl"


async def listing(storage: ObjectStorage, bucket: str) -> dict[str, str]:
    """Every object in the bucket with its ETag: what "nothing changed" is checked against."""
    return {info.key: info.etag async for info in storage.list_objects(bucket)}


@pytest.fixture
async def embedded(make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str) -> Runtime:
    """Two documents embedded, their manifests and records in place."""
    runtime = make_runtime(source_bucket=s3_bucket)
    await storage.put(s3_bucket, KEPT, b"# Kept\n\nA document nobody touches.")
    await storage.put(s3_bucket, CHANGED, b"# Changed\n\nThe first version of a document.")
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["outcomes"] == {"embedded": 2}
    return runtime


async def test_a_dry_run_writes_nothing_whatever_it_finds(
    embedded: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    # Something of every kind to find: a change that would park, a new document, an orphan, a key
    # that cannot have outputs, an inline text left unfinished.
    await storage.put(s3_bucket, CHANGED, b"\x00\x01\x02 binary now")
    await storage.put(s3_bucket, "incoming/new.md", b"# New\n\nA new document.")
    await storage.put(s3_bucket, "embeddings/incoming/gone.md.manifest.json", b"{}")
    await storage.put(s3_bucket, "incoming/" + "/".join(["x" * 200] * 5), b"long key")
    await storage.put(
        s3_bucket, "embeddings/_checkpoints/_inline/faq/submission.json", b'{"id":"faq","text":"hi"}'
    )
    before = await listing(storage, s3_bucket)
    requests = api.requests

    reply = await dispatch(embedded, timer_event({"dry_run": True}), context())

    assert await listing(storage, s3_bucket) == before
    assert api.requests == requests
    assert reply["report"] is None
    # Estimated from sizes, not read (the binary change is a Markdown document's size to the
    # estimate: the manifests calibrate .md); the unfinished inline text is the third.
    assert reply["outcomes"] == {"would_embed": 3}
    assert reply["found"]["orphaned"] == reply["found"]["refused"] == reply["found"]["inline_unfinished"] == 1


async def test_a_new_version_that_fails_keeps_the_previous_outputs(
    embedded: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    records = await storage.get(s3_bucket, RECORDS, max_bytes=10**6)
    manifest = await storage.get(s3_bucket, MANIFEST, max_bytes=10**6)
    await storage.put(s3_bucket, CHANGED, b"\x00\x01\x02 binary now")

    reply = await dispatch(
        embedded, load_event("storage_object_create", bucket=s3_bucket, keys=[CHANGED]), context()
    )

    assert reply["documents"][0]["outcome"] == "parked"
    assert await storage.get(s3_bucket, RECORDS, max_bytes=10**6) == records
    assert await storage.get(s3_bucket, MANIFEST, max_bytes=10**6) == manifest
    error = await read_json(storage, s3_bucket, f"embeddings/_errors/{CHANGED}.json")
    assert error["error"] == "unsupported_document"
    # Reconcile sees it as parked (not stale, not retried), and leaves the old outputs alone.
    tick = await dispatch(embedded, timer_event(None), context())
    assert tick["found"]["parked"] == 1
    assert tick["outcomes"] == {}
    assert await storage.get(s3_bucket, MANIFEST, max_bytes=10**6) == manifest
    # The status says parked, and which version's vectors still stand.
    status, body = await call(embedded, request_event("GET", f"/v1/documents/{CHANGED}", key=None))
    assert (status, body["status"], body["error"]) == (200, "parked", "unsupported_document")
    assert body["previous"]["source"]["etag"] == json.loads(manifest or b"{}")["source"]["etag"]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_configuration_problem_stops_reconcile_and_touches_nothing(
    make_runtime: RuntimeFactory,
    embedded: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    # A model migration with credentials that no longer work: every document is stale.
    migrated = make_runtime(source_bucket=s3_bucket, embeddings_model="text-search-doc-v2")
    for n in range(3):
        await storage.put(s3_bucket, f"incoming/more-{n}.md", f"# More {n}\n\nText.".encode())
    outputs_before = {
        key: etag
        for key, etag in (await listing(storage, s3_bucket)).items()
        if key.startswith("embeddings/")
    }
    api.fail = lambda _text: httpx.Response(status, json={"error": {"message": "Permission denied"}})
    capsys.readouterr()

    reply = await dispatch(migrated, timer_event(None), context())

    assert reply["stopped_by"] == "configuration problem: embeddings_auth_error"
    assert reply["outcomes"] == {}
    assert reply["failed"] == 1  # stopped at the first document, not tried on all five
    after = await listing(storage, s3_bucket)
    written = {key for key in after if key.startswith("embeddings/") and key not in outputs_before}
    # Only the paused sweep's state (the next tick resumes it): no error record, no removal.
    assert all(key.startswith("embeddings/_sweeps/") for key in written), written
    assert all(after.get(key) == etag for key, etag in outputs_before.items())
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["level"] for line in logged if line["msg"] == "reconcile_configuration_problem"] == ["ERROR"]


async def test_a_configuration_problem_on_upload_raises_and_parks_nothing(
    embedded: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, CHANGED, b"# Changed\n\nThe second version.")
    manifest = await storage.get(s3_bucket, MANIFEST, max_bytes=10**6)
    api.fail = lambda _text: httpx.Response(401, json={"error": {"message": "The token is invalid"}})

    with pytest.raises(EmbeddingsAuthError):  # the trigger retries once the setting is fixed
        await dispatch(
            embedded, load_event("storage_object_create", bucket=s3_bucket, keys=[CHANGED]), context()
        )

    assert await storage.head(s3_bucket, f"embeddings/_errors/{CHANGED}.json") is None
    assert await storage.get(s3_bucket, MANIFEST, max_bytes=10**6) == manifest


async def test_a_dry_run_of_a_long_key_writes_no_refusal_record(
    embedded: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/" + "/".join(["y" * 200] * 5)
    await storage.put(s3_bucket, key, b"long key")
    await dispatch(embedded, timer_event({"dry_run": True}), context())
    assert await storage.head(s3_bucket, OutputLayout(s3_bucket, "embeddings/").refusal(key)) is None


async def test_a_mistyped_model_stops_the_migration_and_every_vector_stays(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """The documented migration (change EMBEDDINGS_MODEL, let reconcile run) with a typo in the name,
    against the emulator speaking Yandex's "invalid model_uri": nothing is parked or deleted."""
    with YandexEmulator(EmulatorConfig(rps=1000)) as emulator:
        common: dict[str, Any] = {
            "transports": Transports(),
            "source_bucket": s3_bucket,
            "yc_api_key": "AQVN-test",
            "embeddings_url": emulator.url,
        }
        runtime = make_runtime(**common)
        for n in range(3):
            await storage.put(s3_bucket, f"incoming/doc-{n}.md", f"# Doc {n}\n\nText {n}.".encode())
        assert (await dispatch(runtime, timer_event(None), context()))["outcomes"] == {"embedded": 3}
        before = await listing(storage, s3_bucket)

        mistyped = make_runtime(**common, embeddings_model="text-serch-doc")
        reply = await dispatch(mistyped, timer_event(None), context())

    assert reply["found"]["stale"] == 3
    assert reply["stopped_by"] == "configuration problem: embeddings_model_error"
    assert reply["outcomes"] == {}
    after = await listing(storage, s3_bucket)
    assert {key: etag for key, etag in after.items() if key in before} == before  # nothing replaced
    new = set(after) - set(before)
    assert all(key.startswith("embeddings/_sweeps/") for key in new), new  # nothing parked: the sweep's state
