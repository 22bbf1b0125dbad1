"""A steady tick reads no manifest (reconcile/verified.py), and still finds every stale document.

Functional, on SeaweedFS: the reads of a tick are counted on the real storage client (its own
`get_with_info`, through which every GET goes). After one tick embeds and the next verifies, a
third reads summaries and lists, and no document's manifest; each way a document can go stale
behind the summary's back (its source, its manifest or its records changed by hand, an error
record, other settings) is found by the very next tick.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from devstack.events import timer_event
from embedding_pipeline.bucket_policy import output_layout
from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.outputs.models import ErrorRecord, SourceRef
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.reconcile.inventory import ends_page
from embedding_pipeline.runtime import Runtime
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, object_keys

DOCUMENTS = 40
PAGE = 8


class GetLog:
    """The keys GET from storage while it is on (a spy on the real client: storage stays real)."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def manifests(self) -> list[str]:
        return [key for key in self.keys if key.endswith(".manifest.json")]

    def summaries(self) -> list[str]:
        return [key for key in self.keys if "/verified/" in key]


@pytest.fixture
def gets(monkeypatch: pytest.MonkeyPatch) -> GetLog:
    log = GetLog()
    real = ObjectStorage.get_with_info

    async def spied(
        self: ObjectStorage, bucket: str, key: str, *, max_bytes: int
    ) -> tuple[bytes, ObjectInfo] | None:
        log.keys.append(key)
        return await real(self, bucket, key, max_bytes=max_bytes)

    monkeypatch.setattr(ObjectStorage, "get_with_info", spied)
    return log


async def _seed(storage: ObjectStorage, bucket: str, count: int = DOCUMENTS) -> None:
    await asyncio.gather(
        *(
            storage.put(bucket, f"incoming/doc-{n:03}.md", f"# Doc {n}\n\nThe text of {n}.".encode())
            for n in range(count)
        )
    )


async def _steady(make_runtime: RuntimeFactory, bucket: str, **settings: Any) -> Runtime:
    runtime = make_runtime(source_bucket=bucket, reconcile_page_size=PAGE, **settings)
    first = await dispatch(runtime, timer_event(None), context())
    assert first["outcomes"] == {"embedded": DOCUMENTS}
    second = await dispatch(runtime, timer_event(None), context())  # reads manifests, keeps summaries
    assert second["outcomes"] == {}
    return runtime


async def _tick(runtime: Runtime) -> dict[str, Any]:
    reply: dict[str, Any] = await dispatch(runtime, timer_event(None), context())
    assert reply["stopped_by"] is None, reply
    return reply


async def test_a_steady_tick_reads_no_manifest(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI, gets: GetLog
) -> None:
    await _seed(storage, s3_bucket)
    runtime = await _steady(make_runtime, s3_bucket)
    gets.keys.clear()

    reply = await _tick(runtime)

    assert reply["found"]["sources"] == DOCUMENTS
    assert reply["found"]["missing"] == reply["found"]["stale"] == reply["found"]["orphaned"] == 0
    assert gets.manifests() == []
    # a summary a page of sources (the inline texts' phase counts a page too), and nothing else a
    # document's own: the sweep's state and order probes
    assert 1 <= len(gets.summaries()) <= reply["pages"]
    assert len(gets.keys) <= reply["pages"] + 4, gets.keys
    assert api.requests == DOCUMENTS


async def test_pages_keep_their_ranges_when_a_document_comes_or_goes() -> None:
    """Content-defined page ends: deleting or adding a key moves the end of its own page only."""
    keys = [f"incoming/doc-{n:05}.md" for n in range(5000)]

    def ends(listing: list[str]) -> list[str]:
        found, listed = [], 0
        for key in listing:
            listed += 1
            if ends_page(key, listed, 100):
                found.append(key)
                listed = 0
        return found

    before = ends(keys)
    after_delete = ends(keys[:1000] + keys[1001:])
    after_add = ends(sorted([*keys, "incoming/doc-02500a.md"]))
    assert 25 <= len(before) <= 100  # pages of 50 to 200 documents
    assert len(set(before) ^ set(after_delete)) <= 2
    assert len(set(before) ^ set(after_add)) <= 2


@pytest.mark.parametrize("change", ["source", "manifest", "records", "error_record", "settings"])
async def test_what_changes_behind_a_summary_is_found_by_the_next_tick(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    gets: GetLog,
    change: str,
) -> None:
    await _seed(storage, s3_bucket)
    runtime = await _steady(make_runtime, s3_bucket)
    target = "incoming/doc-017.md"
    manifest_key = f"embeddings/{target}.manifest.json"
    if change == "source":
        await storage.put(s3_bucket, target, b"# Doc 17\n\nAn edited text.")
    elif change == "manifest":  # by hand: claims other records
        manifest = json.loads(await storage.get(s3_bucket, manifest_key, max_bytes=10**6) or b"")
        manifest["records"]["etag"] = "0" * 32
        await storage.put(s3_bucket, manifest_key, json.dumps(manifest).encode())
    elif change == "records":
        await storage.delete(s3_bucket, f"embeddings/{target}.jsonl")
    elif change == "error_record":  # an upload's run met something unexpected meanwhile
        await _park_by_hand(runtime, storage, s3_bucket, target)
    else:  # other settings: every document's recipe changed
        runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=PAGE, chunk_max_tokens=64)
    paid = api.requests
    gets.keys.clear()

    reply = await _tick(runtime)

    found = reply["found"]
    if change == "settings":
        assert found["stale"] == DOCUMENTS
        # the summaries' fingerprint is not these settings': each page read its manifests
        assert set(gets.manifests()) == {
            f"embeddings/incoming/doc-{n:03}.md.manifest.json" for n in range(DOCUMENTS)
        }
    elif change == "error_record":  # retried: its outputs vouch for it, so the record goes, unpaid
        assert found["parked_retry"] == 1
        assert reply["outcomes"] == {"unchanged": 1}
        assert api.requests == paid
        assert await storage.head(s3_bucket, f"embeddings/_errors/{target}.json") is None
    else:
        assert found["stale"] + found["missing"] == 1, found
        assert reply["outcomes"] == {"embedded": 1}
        # that document's one chunk, and nothing else; a manifest rewritten by hand over intact
        # records costs nothing: its vectors are reused
        assert api.requests == paid + (change != "manifest")
    if change != "settings":
        assert set(gets.manifests()) <= {manifest_key}  # the rest judged from their summaries
    again = await _tick(runtime)
    assert again["outcomes"] == {}, again


async def test_a_summary_that_cannot_be_read_costs_its_page_the_manifests_and_nothing_else(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, gets: GetLog
) -> None:
    await _seed(storage, s3_bucket)
    runtime = await _steady(make_runtime, s3_bucket)
    summaries = await object_keys(storage, s3_bucket, "embeddings/_sweeps/")
    summaries = [key for key in summaries if "/verified/" in key]
    assert summaries
    await storage.put(s3_bucket, summaries[0], b'{"fingerprint": 7, "documents": "no"}')
    gets.keys.clear()

    reply = await _tick(runtime)

    assert reply["outcomes"] == {}
    assert 0 < len(gets.manifests()) <= 2 * PAGE  # one page's documents read their manifests
    again = await _tick(runtime)  # and its summary was rewritten
    assert again["outcomes"] == {}


async def test_a_dry_run_writes_no_summary_and_clears_no_error_record(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    await _seed(storage, s3_bucket, count=5)
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=PAGE)
    await dispatch(runtime, timer_event(None), context())
    await _park_by_hand(runtime, storage, s3_bucket, "incoming/doc-003.md")
    before = {info.key: info.etag async for info in storage.list_objects(s3_bucket, "embeddings/")}

    reply = await dispatch(runtime, timer_event({"dry_run": True}), context())

    assert reply["found"]["parked_retry"] == 1
    after = {info.key: info.etag async for info in storage.list_objects(s3_bucket, "embeddings/")}
    assert after == before


async def _park_by_hand(runtime: Runtime, storage: ObjectStorage, bucket: str, key: str) -> None:
    """An error record for the current version, as an unexpected failure of another run leaves."""
    info = await storage.head(bucket, key)
    assert info is not None
    record = ErrorRecord(
        source=SourceRef(bucket=bucket, key=key, etag=info.etag),
        error="unexpected_error",
        reason="by hand",
        failed_at="2026-12-07T00:00:00Z",
    )
    await BucketOutputs(storage, output_layout(runtime.settings, bucket)).document(key).park(record)


async def test_summaries_of_pages_that_are_gone_are_removed_when_the_sweep_ends(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, gets: GetLog
) -> None:
    await _seed(storage, s3_bucket)
    runtime = await _steady(make_runtime, s3_bucket)
    folders = {
        key.split("/verified/")[0] for key in await object_keys(storage, s3_bucket) if "/verified/" in key
    }
    [folder] = folders
    gone = f"{folder}/verified/{'f' * 32}.json"  # the summary of a start no page has
    await storage.put(s3_bucket, gone, b'{"fingerprint": "x", "documents": {}}')
    await asyncio.sleep(3.5)  # listings give whole seconds; the sweep keeps a margin of two

    reply = await _tick(runtime)

    assert reply["summaries_removed"] == 1
    assert await storage.head(s3_bucket, gone) is None
    kept = await object_keys(storage, s3_bucket, f"{folder}/verified/")
    assert 1 <= len(kept) <= reply["pages"]
    gets.keys.clear()
    await _tick(runtime)
    assert gets.manifests() == []  # the pages' own summaries stayed
