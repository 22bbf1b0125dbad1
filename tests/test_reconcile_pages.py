"""Reconcile in key-range pages: each page judges exactly its own documents, whatever the keys.

Unit: the ranges a page lists, and which of its documents it must read by name (ranges.py).
Functional (SeaweedFS): keys that share prefixes, sort between a source and its outputs, or sit at a
page's edge are embedded once, judged current afterwards, and only a deleted source's outputs go,
at every page size.
"""

from __future__ import annotations

import json

import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.reconcile.order import server_order
from embedding_pipeline.pipeline.reconcile.ranges import BYTES, SLASH_FIRST, KeyOrder, KeyRange
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, object_keys

LAYOUT = OutputLayout("docs", "embeddings/")
MAIN = LAYOUT.records_and_manifests

# Keys chosen to cross every edge: a proper prefix of another key (x, x-1), a key that sorts between
# a source and its outputs (a.md-old between a.md and a.md.jsonl), sources named like outputs
# (a.md.jsonl, a.md.manifest.json), a key and its folder (x and x/y.md), and unicode.
TRICKY = [
    "incoming/x",
    "incoming/x-1",
    "incoming/x.md",
    "incoming/x/y.md",
    "incoming/a.md",
    "incoming/a.md-old",
    "incoming/a.md.jsonl",
    "incoming/a.md.manifest.json",
    "incoming/b",
    "incoming/b c.txt",
    "incoming/отчёт.md",
]


def test_a_range_holds_its_documents_only() -> None:
    page = KeyRange("incoming/", "incoming/a", "incoming/m")
    assert page.holds("incoming/a-1")
    assert page.holds("incoming/m")
    assert not page.holds("incoming/a")
    assert not page.holds("incoming/m-1")
    assert not page.holds("other/b")


def test_the_listing_of_a_page_ends_at_its_last_documents_last_output() -> None:
    listing = KeyRange("incoming/", "incoming/a", "incoming/m").listing(MAIN)
    assert listing.prefix == "embeddings/incoming/"
    assert listing.start_after == "embeddings/incoming/a"
    assert (
        listing.stop == "embeddings/incoming/m.ocr.json"
    )  # the greatest of .jsonl, .manifest.json, .ocr.json
    assert not listing.past_end("embeddings/incoming/m.jsonl")
    assert listing.past_end("embeddings/incoming/m0.jsonl")


def test_a_proper_prefix_of_the_last_key_is_read_by_name_when_its_outputs_sort_past_the_end() -> None:
    # incoming/x.jsonl sorts after incoming/x-1.manifest.json ('.' > '-'): x's outputs spill.
    assert KeyRange("incoming/", None, "incoming/x-1").spills(MAIN) == ["incoming/x"]
    # incoming/report.jsonl and .manifest.json sort before incoming/report.md...; .ocr.json after it.
    assert KeyRange("incoming/", None, "incoming/report.md").spills(MAIN) == ["incoming/report"]
    assert KeyRange("incoming/", None, "incoming/report.pdf").spills(MAIN) == []
    # Only documents of the range: x lies before a range that starts after it.
    assert KeyRange("incoming/", "incoming/x", "incoming/x-1").spills(MAIN) == []
    assert KeyRange("incoming/", None, None).spills(MAIN) == []
    # Error records (".json") spill for another set of neighbours: data.json > data.csv.
    assert KeyRange("incoming/", None, "incoming/data.csv").spills(LAYOUT.errors) == ["incoming/data"]
    # Checkpoints are folders: their spills are the later page's strays, never read by name.
    assert KeyRange("incoming/", None, "incoming/x-1").spills(LAYOUT.checkpoint_folders) == []


@pytest.mark.parametrize("order", [BYTES, SLASH_FIRST], ids=lambda order: order.name)
@pytest.mark.parametrize("area", ["records_and_manifests", "errors", "index_marks"])
def test_every_key_of_a_document_lies_in_its_pages_listing_or_among_its_spills(
    order: KeyOrder, area: str
) -> None:
    """Exhaustively over the tricky keys, in either server order: for any split of them into pages,
    each document's outputs are in its own page's listing window or read by name."""
    target = getattr(LAYOUT, area)
    keys = sorted(TRICKY, key=order.key)
    for through in keys:
        for after in [None, *[key for key in keys if order.key(key) < order.key(through)]]:
            page = KeyRange("incoming/", after, through, order)
            listing, spills = page.listing(target), page.spills(target)
            for document in (key for key in keys if page.holds(key)):
                for output in target.keys(document):
                    after_start = listing.start_after is None or order.key(output) > order.key(
                        listing.start_after
                    )
                    inside = after_start and not listing.past_end(output)
                    assert inside or document in spills, (after, through, document, output)


def test_the_two_orders_differ_where_a_folder_meets_its_neighbours() -> None:
    keys = ["incoming/x", "incoming/x-1", "incoming/x.md", "incoming/x/y.md"]
    assert sorted(keys, key=BYTES.key) == keys
    assert sorted(keys, key=SLASH_FIRST.key) == [
        "incoming/x",
        "incoming/x/y.md",
        "incoming/x-1",
        "incoming/x.md",
    ]
    # SeaweedFS's start-after skips the folder it names unless given with a trailing "/".
    assert SLASH_FIRST.start_after("incoming/x") == "incoming/x/"
    assert BYTES.start_after("incoming/x") == "incoming/x"


async def test_the_servers_order_is_found_once_and_kept_for_dry_runs(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    layout = OutputLayout(s3_bucket, "embeddings/")
    assert await server_order(storage, layout, may_write=False) is None  # a dry run writes nothing
    assert await object_keys(storage, s3_bucket) == []

    found = await server_order(storage, layout, may_write=True)

    assert found is SLASH_FIRST  # SeaweedFS lists a folder's entries by name
    assert await server_order(storage, layout, may_write=False) is SLASH_FIRST


async def _seed(storage: ObjectStorage, bucket: str) -> None:
    for number, key in enumerate(TRICKY):
        text = f"Document {number}: the text of {key}."
        body = json.dumps({"text": text}) if key.endswith((".json", ".jsonl")) else f"# {text}"
        await storage.put(bucket, key, body.encode())


@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
async def test_tricky_keys_are_embedded_once_and_judged_current_at_any_page_size(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    page_size: int,
) -> None:
    await _seed(storage, s3_bucket)
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=page_size)

    first = await dispatch(runtime, timer_event(None), context())
    assert first["stopped_by"] is None, first
    assert first["outcomes"] == {"embedded": len(TRICKY)}
    assert first["found"]["missing"] == len(TRICKY)
    assert first["found"]["orphaned"] == 0
    assert api.requests == len(TRICKY)
    assert sorted(api.texts.values()) == [1] * len(TRICKY)  # each text paid once

    again = await dispatch(runtime, timer_event(None), context())
    assert again["found"] | {"sources": 0} == dict.fromkeys(again["found"], 0), again["found"]
    assert again["outcomes"] == {}
    assert api.requests == len(TRICKY)  # nothing paid twice


@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
async def test_a_deleted_source_loses_exactly_its_own_outputs_at_any_page_size(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    page_size: int,
) -> None:
    await _seed(storage, s3_bucket)
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=page_size)
    await dispatch(runtime, timer_event(None), context())
    for gone in ("incoming/x", "incoming/a.md"):  # each a proper prefix of other keys
        await storage.delete(s3_bucket, gone)
    before = {info.key: info.etag async for info in storage.list_objects(s3_bucket, "embeddings/incoming/")}

    reply = await dispatch(runtime, timer_event(None), context())

    assert reply["found"]["orphaned"] == 2
    assert reply["orphans_removed"] == 2
    after = {info.key: info.etag async for info in storage.list_objects(s3_bucket, "embeddings/incoming/")}
    removed = {key for key in before if key not in after}
    assert removed == {
        "embeddings/incoming/x.jsonl",
        "embeddings/incoming/x.manifest.json",
        "embeddings/incoming/a.md.jsonl",
        "embeddings/incoming/a.md.manifest.json",
    }
    assert all(after[key] == before[key] for key in after)  # the rest untouched, byte for byte
    assert api.requests == len(TRICKY)


async def test_an_orphan_whose_outputs_spill_past_its_page_is_found_by_name(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """x has outputs and no source; with one source a page, the page (None, x-1] holds x, whose
    outputs sort after x-1's: only reading them by name finds the orphan."""
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=1)
    for key in ("incoming/x", "incoming/x-1", "incoming/x-2", "incoming/y"):
        await storage.put(s3_bucket, key, f"text of {key}".encode())
    await dispatch(runtime, timer_event(None), context())
    await storage.delete(s3_bucket, "incoming/x")

    reply = await dispatch(runtime, timer_event(None), context())

    assert reply["orphans_removed"] == 1
    assert await storage.head(s3_bucket, "embeddings/incoming/x.manifest.json") is None
    assert await storage.head(s3_bucket, "embeddings/incoming/x-1.manifest.json") is not None


async def test_a_stray_checkpoint_of_a_gone_document_is_removed_by_the_page_that_lists_it(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    """A checkpoint folder of x (no source) sorts after x.md's outputs ('/' > '.'): the page of x
    cannot list it; the later page that does asks whether x exists, and removes it."""
    runtime = make_runtime(source_bucket=s3_bucket, reconcile_page_size=1)
    for key in ("incoming/x.md", "incoming/z.md"):
        await storage.put(s3_bucket, key, f"text of {key}".encode())
    await storage.put(s3_bucket, "embeddings/_checkpoints/incoming/x/0123abcd-000001.jsonl", b"")
    await storage.put(s3_bucket, "embeddings/_checkpoints/incoming/x.md/0123abcd-000001.jsonl", b"")

    await dispatch(runtime, timer_event(None), context())

    assert await storage.head(s3_bucket, "embeddings/_checkpoints/incoming/x/0123abcd-000001.jsonl") is None
    # x.md's own (left over) checkpoint was discarded by its completed run, not as an orphan.
    assert await storage.head(s3_bucket, "embeddings/incoming/x.md.manifest.json") is not None
