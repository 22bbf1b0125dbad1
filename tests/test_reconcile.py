"""Functional: the timer's reconcile finds missing, stale and orphaned outputs and repairs them."""

from __future__ import annotations

import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Runtime
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json


@pytest.fixture
async def seeded(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> Runtime:
    """A bucket with three embedded documents, then: one new (missing), one changed (stale), one deleted."""
    runtime = make_runtime(source_bucket=s3_bucket)
    for name in ("kept", "changed", "deleted"):
        await storage.put(s3_bucket, f"incoming/{name}.md", f"# {name}\n\nText of {name}.".encode())
    reply = await dispatch(runtime, timer_event(None), context())
    assert reply["outcomes"] == {"embedded": 3}
    await storage.put(s3_bucket, "incoming/new.md", b"# new\n\nA new document.")
    await storage.put(s3_bucket, "incoming/changed.md", b"# changed\n\nText of changed, edited.")
    await storage.delete(s3_bucket, "incoming/deleted.md")
    api.texts.clear()
    api.requests = 0
    return runtime


async def test_reconcile_repairs_missing_stale_and_orphaned(
    seeded: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    reply = await dispatch(seeded, timer_event({"action": "reconcile"}), context())

    assert reply["found"] == {
        "sources": 3,
        "missing": 1,
        "stale": 1,
        "orphaned": 1,
        "parked_retry": 0,
        "parked": 0,
        "refused": 0,
        "inline_unfinished": 0,
    }
    assert reply["outcomes"] == {"embedded": 2}
    assert reply["orphans_removed"] == 1
    assert reply["stopped_by"] is None
    assert set(api.texts) == {"# new\n\nA new document.", "# changed\n\nText of changed, edited."}
    outputs = await object_keys(storage, s3_bucket, "embeddings/incoming/")
    assert "embeddings/incoming/new.md.manifest.json" in outputs
    assert not any("deleted" in key for key in outputs)
    report = await read_json(storage, s3_bucket, reply["report"])
    assert report["tokens"] == reply["tokens"] > 0
    assert report["api_requests"] == 2
    # What the sweep asked of Object Storage: one page lists sources and outputs, and writes.
    assert report["storage_requests"]["LIST"] >= 2
    assert report["storage_requests"]["PUT"] >= 4  # two documents' records and manifests at least

    # A second tick finds nothing to do.
    again = await dispatch(seeded, timer_event(None), context())
    assert again["found"]["missing"] == again["found"]["stale"] == again["found"]["orphaned"] == 0


async def test_dry_run_estimates_and_calls_nothing(
    seeded: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    before = await object_keys(storage, s3_bucket, "embeddings/incoming/")

    reply = await dispatch(seeded, timer_event({"action": "reconcile", "dry_run": True}), context())

    assert api.requests == 0
    assert reply["outcomes"] == {"would_embed": 2}
    assert reply["tokens"] > 0
    assert reply["estimated_cost"] > 0
    # the orphan is still there
    assert await object_keys(storage, s3_bucket, "embeddings/incoming/") == before


async def test_model_change_makes_everything_stale(
    make_runtime: RuntimeFactory, seeded: Runtime, s3_bucket: str
) -> None:
    migrated = make_runtime(source_bucket=s3_bucket, embeddings_model="text-search-doc-v2")
    reply = await dispatch(migrated, timer_event(None), context())
    assert reply["found"]["stale"] == 2  # kept and changed; new is missing
    assert reply["outcomes"] == {"embedded": 3}


async def test_token_budget_pauses_the_sweep_and_the_next_tick_resumes_it(
    seeded: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    first = await dispatch(seeded, timer_event({"max_tokens": 1}), context())
    assert first["this_run"]["outcomes"] == {"embedded": 1}
    assert first["stopped_by"] == "token budget"
    assert first["report"] is None  # one report per sweep, when it ends
    paused = [
        key
        for key in await object_keys(storage, s3_bucket, "embeddings/_sweeps/")
        if key.endswith(".json") and "/verified/" not in key  # what its pages verified (verified.py)
    ]
    assert len(paused) == 1

    second = await dispatch(seeded, timer_event({"max_tokens": 1}), context())
    assert second["this_run"]["outcomes"] == {"embedded": 1}
    assert second["stopped_by"] is None
    assert second["sweep"] == first["sweep"]  # the same sweep, resumed
    report = await read_json(storage, s3_bucket, second["report"])
    assert report["outcomes"] == {"embedded": 2}  # summed over both runs
    assert report["runs"] == 2
    assert report["found"]["missing"] + report["found"]["stale"] == 2  # each page counted once
    assert await storage.head(s3_bucket, paused[0]) is None  # the sweep is over: its state goes


async def test_parked_document_is_retried_only_when_it_changed(
    seeded: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await dispatch(seeded, timer_event(None), context())
    await storage.put(s3_bucket, "incoming/broken.json", b"{not json")
    first = await dispatch(seeded, timer_event(None), context())
    assert first["outcomes"] == {"parked": 1}
    second = await dispatch(seeded, timer_event(None), context())
    assert second["found"]["parked"] == 1
    assert second["outcomes"] == {}
    await storage.put(s3_bucket, "incoming/broken.json", b'{"text": "fixed now"}')
    third = await dispatch(seeded, timer_event(None), context())
    assert third["found"]["parked_retry"] == 1
    assert third["outcomes"] == {"embedded": 1}


@pytest.mark.parametrize(
    "payload",
    ['{"action": "explode"}', "not json", '{"max_tokens": -5}', '{"prefix": "private/"}', '{"prefix": ""}'],
)
async def test_bad_timer_payload_is_answered_not_raised(runtime: Runtime, payload: str) -> None:
    reply = await dispatch(runtime, timer_event(payload), context())
    assert reply["error"] == "invalid timer payload"
    assert reply["reason"]


async def test_reconcile_without_source_bucket_is_logged(runtime: Runtime) -> None:
    reply = await dispatch(runtime, load_event("timer_no_payload"), context())
    assert reply == {"error": "SOURCE_BUCKET is not set"}
