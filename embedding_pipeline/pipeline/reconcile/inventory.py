"""What one page of reconcile sees: the sources of a key range and the outputs of the same range.

Sources are listed from the page's start; the key that ends the page (`through`) is chosen by its
content, as edits' chunk boundaries are (`ends_page`): a key whose hash falls on the page size's
grid, once half a page was listed, or two pages' worth at most. So a page is complete by
construction, the next one starts after it, and an upload or a delete moves the boundaries of one
page only: the others keep their ranges from tick to tick, and with them what a tick verified
(verified.py). The outputs of exactly those documents are then listed in each output area
(ranges.py says where they lie, and which of them must be read by name); the listings run side by
side. Nothing outside the page's range is kept: such an output belongs to another page, which
sees it, except strays before the page (ranges.py), kept to be looked at.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

from embedding_pipeline.bucket_policy import document_of_sidecar, not_a_source, sidecar_key
from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.outputs.layout import OutputArea, OutputKey, OutputLayout
from embedding_pipeline.outputs.names import inline_document
from embedding_pipeline.pipeline.reconcile.ranges import AreaListing, KeyOrder, KeyRange
from embedding_pipeline.settings import Settings

INLINE = inline_document("")  # the documents of inline texts: `_inline/{id}`


@dataclass(slots=True)
class PageInventory:
    range: KeyRange
    last: bool  # nothing comes after this page
    sources: dict[str, ObjectInfo] = field(default_factory=dict)
    sidecars: dict[str, ObjectInfo] = field(default_factory=dict)  # metadata sidecars, by their document
    refused: list[str] = field(default_factory=list)  # sources whose keys cannot have outputs
    manifests: dict[str, ObjectInfo] = field(default_factory=dict)
    records: dict[str, ObjectInfo] = field(default_factory=dict)
    errors: dict[str, ObjectInfo] = field(default_factory=dict)
    index_marks: set[str] = field(default_factory=set)
    checkpoints: set[str] = field(default_factory=set)
    ocr_pages: set[str] = field(default_factory=set)  # documents with pages Vision OCR read
    # Outputs listed here whose documents come before the range (ranges.py: strays): the spills of
    # an earlier page's documents, read there by name only when those are sources (a deleted one's
    # are found here), and checkpoint folders, which cannot be read by name.
    stray_checkpoints: set[str] = field(default_factory=set)
    stray_outputs: set[str] = field(default_factory=set)

    def documents_with_outputs(self) -> set[str]:
        return (
            set(self.manifests)
            | set(self.records)
            | set(self.errors)
            | self.index_marks
            | self.checkpoints
            | self.ocr_pages
        )


async def list_sources(
    storage: ObjectStorage,
    settings: Settings,
    bucket: str,
    layout: OutputLayout,
    rest: KeyRange,
    *,
    page_size: int,
) -> tuple[KeyRange, dict[str, ObjectInfo], dict[str, ObjectInfo], list[str], bool]:
    """The next page's sources after `rest.after`: its range, the sources, their metadata sidecars
    (by document), the refused keys, and whether it is the last page.

    The key that ends a page takes the keys that follow it up to its own sidecar (`X`, `X-1`,
    `X.metadata.json`), so that a document and its sidecar share a page; the next key listed shows
    where that stops (it is listed again by the next page). A sidecar that still lies past the end
    (of a source that is a proper prefix of the last key) is read by name (`sidecars_past_end`)."""
    sources: dict[str, ObjectInfo] = {}
    sidecars: dict[str, ObjectInfo] = {}
    refused: list[str] = []
    listed = 0
    ending: str | None = None  # the key chosen to end the page
    through: str | None = None
    start_after = None if rest.after is None else rest.order.start_after(rest.after)
    async for info in storage.list_objects(
        bucket, rest.prefix, start_after=start_after, page_size=min(page_size, 1000)
    ):
        if ending is not None and (
            listed >= 2 * page_size or not _up_to_sidecar(rest.order, ending, info.key)
        ):
            break
        listed += 1
        through = info.key
        document = document_of_sidecar(info.key)
        if document is not None and not_a_source(settings, document) is None:
            sidecars[document] = info
        elif not_a_source(settings, info.key) is not None:
            pass  # an output (sources and outputs share a bucket and prefix), or a reserved name
        elif layout.key_refusal(info.key) is not None:
            refused.append(info.key)
        else:
            sources[info.key] = info
        if ending is None and ends_page(info.key, listed, page_size):
            ending = info.key
    if ending is None:
        return KeyRange(rest.prefix, rest.after, None, rest.order), sources, sidecars, refused, True
    page = KeyRange(rest.prefix, rest.after, through, rest.order)
    return page, sources, sidecars, refused, False


def _up_to_sidecar(order: KeyOrder, ending: str, key: str) -> bool:
    """Whether `key`, listed after the key chosen to end a page, still belongs to that page."""
    return key.startswith(ending) and order.key(key) <= order.key(sidecar_key(ending))


async def sidecars_past_end(
    storage: ObjectStorage, bucket: str, page: KeyRange, sources: dict[str, ObjectInfo]
) -> dict[str, ObjectInfo]:
    """The sidecars of the page's sources that sort past its end, read by name: only sources that
    are proper prefixes of the last key can have one (`x` when the page ends at `x-1`), so this
    is rarely a request at all."""
    found: dict[str, ObjectInfo] = {}
    if page.through is None:
        return found
    for length in range(len(page.prefix), len(page.through)):
        document = page.through[:length]
        if document in sources and not page.holds(sidecar_key(document)):
            info = await storage.head(bucket, sidecar_key(document))
            if info is not None:
                found[document] = info
    return found


def ends_page(key: str, listed: int, page_size: int) -> bool:
    """Whether `key`, the `listed`-th of its page, ends it: half a page at least and two at most,
    the boundary a key whose hash falls on a grid of half the page size (`page_size` on average)."""
    half = max(1, page_size // 2)
    if listed >= 2 * page_size:
        return True
    return listed >= page_size - half and zlib.crc32(key.encode("utf-8", "surrogatepass")) % half == 0


async def list_outputs(
    storage: ObjectStorage,
    layout: OutputLayout,
    page: KeyRange,
    inventory: PageInventory,
    *,
    areas: tuple[OutputArea, ...] | None = None,
    spill_candidates: Collection[str] | None = None,
) -> None:
    """The outputs of the page's documents in `areas` (default: every area), side by side, into
    `inventory`. Spills (ranges.py) are read by name for `spill_candidates` only when given (a
    page's sources: another document's spilled outputs are found by the next page, as strays)."""
    bucket = layout.bucket
    # Inline texts are documents of their own phase, unless that is what this page walks.
    inline_page = page.prefix.startswith(INLINE)

    def keep(document: str) -> bool:
        return page.holds(document) and (inline_page or not document.startswith(INLINE))

    def take(output: OutputKey, info: ObjectInfo) -> None:
        document = output.document
        assert document is not None
        if output.kind == "records":
            inventory.records[document] = info
        elif output.kind == "manifest":
            inventory.manifests[document] = info
        elif output.kind == "error":
            inventory.errors[document] = info
        elif output.kind == "index_pending":
            inventory.index_marks.add(document)
        elif output.kind == "checkpoint":
            inventory.checkpoints.add(document)
        elif output.kind == "ocr":
            inventory.ocr_pages.add(document)

    async def area(target: OutputArea, kinds: frozenset[str]) -> None:
        async for info in _listing(storage, bucket, page.listing(target)):
            output = layout.parse(info.key)
            if output is None or output.document is None or output.kind not in kinds:
                continue
            if keep(output.document):
                take(output, info)
            elif _before(page, output.document):
                strays = inventory.stray_checkpoints if target.folder else inventory.stray_outputs
                strays.add(output.document)
        for document in page.spills(target):
            if keep(document) and (spill_candidates is None or document in spill_candidates):
                for key in target.keys(document):
                    spilled = layout.parse(key)
                    if spilled is not None and (found := await storage.head(bucket, key)) is not None:
                        take(spilled, found)

    kinds = {
        layout.records_and_manifests: frozenset({"records", "manifest", "ocr"}),
        layout.errors: frozenset({"error"}),
        layout.index_marks: frozenset({"index_pending"}),
        layout.checkpoint_folders: frozenset({"checkpoint"}),
    }
    await asyncio.gather(*(area(target, kinds[target]) for target in areas or tuple(kinds)))


def _before(page: KeyRange, document: str) -> bool:
    """A document of this page's prefix that an earlier page holds."""
    key = page.order.key
    return document.startswith(page.prefix) and page.after is not None and key(document) <= key(page.after)


async def _listing(storage: ObjectStorage, bucket: str, listing: AreaListing) -> AsyncIterator[ObjectInfo]:
    async for info in storage.list_objects(bucket, listing.prefix, start_after=listing.start_after_param):
        if listing.past_end(info.key):
            return
        yield info


async def documents_range(
    storage: ObjectStorage, layout: OutputLayout, rest: KeyRange, driver: OutputArea, page_size: int
) -> tuple[KeyRange, bool]:
    """The range of the next `page_size` documents with outputs in the `driver` area (pages of
    documents that have no sources: inline texts, or the index's rebuild), and whether it is the last."""
    listing = rest.listing(driver)
    kinds = ("checkpoint",) if driver.folder else ("records", "manifest")
    documents: set[str] = set()
    through = None
    async for info in storage.list_objects(
        layout.bucket, listing.prefix, start_after=listing.start_after_param
    ):
        output = layout.parse(info.key)
        if output is None or output.document is None or output.kind not in kinds:
            continue
        if not rest.holds(output.document):
            continue
        documents.add(output.document)
        through = rest.order.last([through or output.document, output.document])
        if len(documents) >= page_size:
            return KeyRange(rest.prefix, rest.after, through, rest.order), False
    return KeyRange(rest.prefix, rest.after, None, rest.order), True
