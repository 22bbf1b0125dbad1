"""One page of a sweep, end to end: list it, judge it, act on it.

A sources page covers up to `page_size` sources of the sweep's prefix and the outputs of exactly
those keys: it removes orphans, records refusals, repairs the vector index's rows of those
documents, and has the missing, stale and retriable documents embedded (here, by the queue's
instances, or only estimated). Inline texts have pages of their own (inline_page.py).

A page is *complete* when everything it found was seen to; a run that stops inside a page (its
time or token budget, a configuration problem) leaves it incomplete, and the next run walks it
again: what was done meanwhile is current by then and costs nothing. What a page found is counted
at its first walk only (the sweep's state remembers).
"""

from __future__ import annotations

from dataclasses import dataclass

from embedding_pipeline.errors import OcrOff
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import recipe
from embedding_pipeline.pipeline.reconcile.actions import (
    OnSent,
    SweepRun,
    embed_here,
    estimate,
    queue_refs,
    record_refusals,
    remove_leftover_checkpoints,
    remove_orphans,
)
from embedding_pipeline.pipeline.reconcile.classify import classify
from embedding_pipeline.pipeline.reconcile.index_pages import repair_page_index
from embedding_pipeline.pipeline.reconcile.inventory import (
    PageInventory,
    list_outputs,
    list_sources,
    sidecars_past_end,
)
from embedding_pipeline.pipeline.reconcile.ranges import KeyRange
from embedding_pipeline.pipeline.reconcile.sampling import calibrate, sample
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.pipeline.reconcile.verified import Verified, read_verified, write_verified

log = get_logger()


@dataclass(slots=True)
class PageDone:
    range: KeyRange
    last: bool  # no page comes after this one
    complete: bool
    part: Totals  # what this page found and did
    sent_through: str | None = None  # an incomplete page: the last document queued


async def source_page(
    run: SweepRun,
    rest: KeyRange,
    *,
    page_size: int,
    sent_through: str | None = None,
    on_sent: OnSent | None = None,
) -> PageDone:
    """The page of sources after `rest.after`. `sent_through`: documents up to it were queued by
    an earlier walk of this page (which stopped, or crashed), and are not queued again."""
    invocation, layout = run.invocation, run.outputs.layout
    storage = invocation.storage
    page, sources, sidecars, refused, last = await list_sources(
        storage, invocation.settings, run.bucket, layout, rest, page_size=page_size
    )
    sidecars |= await sidecars_past_end(storage, run.bucket, page, sources)
    inventory = PageInventory(page, last, sources=sources, sidecars=sidecars, refused=refused)
    await list_outputs(storage, layout, page, inventory, spill_candidates=sources.keys())
    settings = invocation.settings
    fingerprint = recipe(settings, settings.document_model_uri).fingerprint
    verified = (
        None if run.prefix_id is None else await read_verified(storage, layout, run.prefix_id, page.after)
    )
    found = await classify(
        run.outputs,
        inventory,
        fingerprint=fingerprint,
        deployment=invocation.deployment,
        calibration=run.calibration,
        verified=verified,
        # Scans parked while OCR was off are tried again once it is on.
        retry_errors=frozenset({OcrOff.code}) if settings.ocr_enabled else frozenset(),
    )
    found.orphaned |= await _stray_orphans(run, inventory)
    part = Totals()
    if not run.dry_run:
        await remove_orphans(run, part, found.orphaned)
        await record_refusals(run, part, refused)
        await remove_leftover_checkpoints(run, part, inventory.checkpoints & found.current_documents)
    with_manifest = set(inventory.manifests) - found.orphaned
    part.index_add(await repair_page_index(run, inventory, with_manifest, skip=found.to_embed))
    order = page.order.key
    newest_first = sorted(
        found.to_embed, key=lambda key: (sources[key].last_modified or "", order(key)), reverse=True
    )
    work = [(key, sources[key].size) for key in newest_first]
    if run.mode == "dry_run":
        # A metadata-only change rewrites records and manifest from the vectors in place: no request.
        if found.metadata_only:
            part.outcome("would_rewrite", count=len(found.metadata_only))
        work = [item for item in work if item[0] not in found.metadata_only]
        await calibrate(run, inventory)
        estimate(run, part, await sample(run, part, work))
        complete = True
    elif run.mode == "queue":
        in_key_order = sorted(
            (item for item in work if sent_through is None or order(item[0]) > order(sent_through)),
            key=lambda item: order(item[0]),
        )
        complete, sent = await queue_refs(run, part, in_key_order, on_sent=on_sent or _nothing)
        sent_through = sent or sent_through
    else:
        complete = await embed_here(run, part, work)
    complete = complete and run.stopped is None
    if complete and not run.dry_run and run.prefix_id is not None:
        # Last: a run that stops on a configuration problem has written nothing.
        summary = Verified(fingerprint=fingerprint, documents=found.verified)
        await write_verified(storage, layout, run.prefix_id, page.after, summary)
    part.pages = int(complete)
    part.found_add({"sources": len(sources), "refused": len(refused), **found.counts()})
    return PageDone(page, last, complete, part, sent_through=None if complete else sent_through)


async def _nothing(_key: str, _part: Totals) -> None:
    return None


async def _stray_orphans(run: SweepRun, inventory: PageInventory) -> set[str]:
    """Outputs of documents before the page (ranges.py: strays: an earlier page's spills, checkpoint
    folders) whose source is gone. Rare: each costs a HEAD only where such an output exists."""
    gone = set()
    for document in sorted(inventory.stray_checkpoints | inventory.stray_outputs):
        if await run.invocation.storage.head(run.bucket, document) is None:
            gone.add(document)
    return gone
