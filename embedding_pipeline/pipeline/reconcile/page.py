"""One page of a sweep, end to end: list it, judge it, act on it.

A sources page (`source_page`) covers up to `page_size` sources of the sweep's prefix and the
outputs of exactly those keys: it removes orphans, records refusals, repairs the vector index's
rows of those documents, and has the missing, stale and retriable documents embedded (here, by the
queue's instances, or only estimated). An inline page (`inline_page`) covers texts that arrived in
messages (`_inline/{id}`): it finishes those whose run stopped early, and repairs their index rows.

A page is *complete* when everything it found was seen to; a run that stops inside a page (its
time or token budget, a configuration problem) leaves it incomplete, and the next run walks it
again: what was done meanwhile is current by then and costs nothing. What a page found is counted
at its first walk only (the sweep's state remembers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import OutOfTime, StorageError, VectorIndexError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputArea, OutputLayout
from embedding_pipeline.outputs.models import settings_fingerprint
from embedding_pipeline.pipeline.embed import embed_object
from embedding_pipeline.pipeline.reconcile.classify import classify
from embedding_pipeline.pipeline.reconcile.inventory import INLINE, PageInventory, list_outputs, list_sources
from embedding_pipeline.pipeline.reconcile.ranges import KeyRange
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.pipeline.reconcile.work import (
    REFS_PER_BATCH,
    OnSent,
    Run,
    embed_here,
    estimate,
    queue_refs,
    record_refusals,
    remove_orphans,
)
from embedding_pipeline.redact import redact
from embedding_pipeline.work_messages import InlineRecord

log = get_logger()

_RECORDS_SAMPLE_LINES = 200


@dataclass(slots=True)
class PageDone:
    range: KeyRange
    last: bool  # no page comes after this one
    complete: bool
    part: Totals  # what this page found and did
    sent_through: str | None = None  # an incomplete page: the last document queued


async def source_page(
    run: Run,
    scope: KeyRange,
    *,
    page_size: int,
    sent_through: str | None = None,
    on_sent: OnSent | None = None,
) -> PageDone:
    """The page of sources after `scope.after`. `sent_through`: documents up to it were queued by
    an earlier walk of this page (which stopped, or crashed), and are not queued again."""
    invocation, layout = run.invocation, run.outputs.layout
    storage = invocation.storage
    page, sources, refused, last = await list_sources(storage, run.bucket, layout, scope, page_size=page_size)
    inventory = PageInventory(page, last, sources=sources, refused=refused)
    await list_outputs(storage, layout, page, inventory)
    settings = invocation.settings
    fingerprint = settings_fingerprint(settings, settings.document_model_uri)
    found = await classify(run.outputs, inventory, fingerprint=fingerprint, calibration=run.calibration)
    part = Totals()
    if not run.dry_run:
        await remove_orphans(run, part, found.orphaned | await _stray_orphans(run, inventory))
        await record_refusals(run, part, refused)
    with_manifest = set(inventory.manifests) - found.orphaned
    part.index_add(await _repair_index(run, inventory, with_manifest, skip=found.to_embed))
    order = page.order.key
    newest_first = sorted(
        found.to_embed, key=lambda key: (sources[key].last_modified or "", order(key)), reverse=True
    )
    work = [(key, sources[key].size) for key in newest_first]
    if run.mode == "dry_run":
        await _calibrate(run, inventory)
        estimate(run, part, await _sample(run, part, work))
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
    part.pages = int(complete)
    part.found_add({"sources": len(sources), "refused": len(refused), **found.counts()})
    return PageDone(page, last, complete, part, sent_through=None if complete else sent_through)


async def inline_page(run: Run, scope: KeyRange, *, page_size: int) -> PageDone:
    """The next page of inline texts: those whose run stopped early are finished from the text kept
    beside their checkpoint; with a vector index, their rows are brought in step too."""
    invocation, layout = run.invocation, run.outputs.layout
    storage, index = invocation.storage, invocation.vector_index
    # Without an index only checkpoints matter: walking every inline text's manifest would not.
    driver = layout.records_and_manifests if index is not None else layout.checkpoint_folders
    page, last = await documents_range(storage, layout, scope, driver, page_size)
    inventory = PageInventory(page, last)
    areas = None if index is not None else (layout.checkpoint_folders,)
    await list_outputs(storage, layout, page, inventory, areas=areas)
    candidates = (inventory.checkpoints - set(inventory.manifests)) | inventory.stray_checkpoints
    unfinished = []
    for document in sorted(candidates):
        if (index is None or document not in inventory.checkpoints) and await storage.head(
            layout.bucket, run.outputs.document(document).keys.manifest
        ) is not None:
            continue  # finished: its checkpoint is only left over
        unfinished.append(document)
    part = Totals()
    part.index_add(await _repair_index(run, inventory, set(inventory.manifests), skip=set(unfinished)))
    complete = await _finish_inline(run, part, unfinished)
    part.pages = int(complete)
    part.found_add({"inline_unfinished": len(unfinished)})
    return PageDone(page, last, complete, part)


async def documents_range(
    storage: ObjectStorage, layout: OutputLayout, scope: KeyRange, driver: OutputArea, page_size: int
) -> tuple[KeyRange, bool]:
    """The range of the next `page_size` documents with outputs in the `driver` area (pages of
    documents that have no sources: inline texts, or the index's rebuild), and whether it is the last."""
    listing = scope.listing(driver)
    kinds = ("checkpoint",) if driver.folder else ("records", "manifest")
    documents: set[str] = set()
    through = None
    async for info in storage.list_objects(
        layout.bucket, listing.prefix, start_after=listing.start_after_param
    ):
        output = layout.parse(info.key)
        if output is None or output.document is None or output.kind not in kinds:
            continue
        if not scope.holds(output.document):
            continue
        documents.add(output.document)
        through = scope.order.last([through or output.document, output.document])
        if len(documents) >= page_size:
            return KeyRange(scope.prefix, scope.after, through, scope.order), False
    return KeyRange(scope.prefix, scope.after, None, scope.order), True


async def _finish_inline(run: Run, part: Totals, documents: list[str]) -> bool:
    """Inline texts whose run stopped early: finished here, handed to the queue, or estimated."""
    # Imported here: the pipeline's work module imports the embed module too (keeps import order simple).
    from embedding_pipeline.pipeline.work import embed_inline  # noqa: PLC0415

    handed: list[str] = []
    for document in documents:
        if not run.may_start():
            return False
        outputs = run.outputs.document(document)
        body = await outputs.submission()
        try:
            submission = InlineRecord.model_validate_json(body or b"")
        except ValidationError:
            # Vectors nobody can finish (the text is gone): an orphaned checkpoint.
            if not run.dry_run:
                await outputs.remove()
            log.warning("inline_checkpoint_orphaned", document=document)
            continue
        if run.mode == "dry_run":
            part.outcome("would_embed")
            part.estimated_tokens += run.calibration.tokens_of_text(len(submission.text))
        elif run.mode == "queue":
            handed.append(submission.body())
            if len(handed) == REFS_PER_BATCH:
                await _hand(run, part, handed)
        else:
            try:
                result = await embed_inline(
                    run.invocation,
                    submission.id,
                    submission.text,
                    metadata=submission.metadata,
                    model=submission.model,
                )
            except OutOfTime:
                run.stopped = run.stopped or "time budget"
                return False
            except Exception as exc:
                run.fail(part, document, exc)
                continue
            run.done(part, result)
    if handed:
        await _hand(run, part, handed)
    return run.stopped is None


async def _hand(run: Run, part: Totals, bodies: list[str]) -> None:
    queue = run.invocation.queue
    assert queue is not None
    await queue.send_batch(list(bodies))
    part.outcome("handed_to_queue", count=len(bodies))
    bodies.clear()


async def _nothing(_key: str, _part: Totals) -> None:
    return None


async def _stray_orphans(run: Run, inventory: PageInventory) -> set[str]:
    """Checkpoint folders of documents before the page (ranges.py: strays) whose source is gone."""
    gone = set()
    for document in sorted(inventory.stray_checkpoints):
        if await run.invocation.storage.head(run.bucket, document) is None:
            gone.add(document)
    return gone


async def _repair_index(
    run: Run, inventory: PageInventory, with_manifest: set[str], *, skip: set[str]
) -> dict[str, Any] | None:
    """The vector index's rows of this page's documents brought in step with the bucket, within half
    of the time left (vector_index/follow.py). It never stops the run: the index is derived."""
    index = run.invocation.vector_index
    if index is None:
        return None
    from embedding_pipeline.vector_index.repair import IndexPage, repair  # noqa: PLC0415

    page = inventory.range
    inline_page = page.prefix.startswith(INLINE)

    def keep(document: str) -> bool:
        return page.holds(document) and (inline_page or not document.startswith(INLINE))

    try:
        repaired = await repair(
            index,
            run.invocation.storage,
            run.outputs,
            records=inventory.records,
            manifests=with_manifest,
            marked=inventory.index_marks,
            skip=skip,  # this run embeds them: their own write follows their manifest
            deadline=Deadline.after(run.invocation.deadline.remaining() / 2),
            dry_run=run.dry_run,
            page=IndexPage(
                page.prefix, page.after, page.through, keep=keep, slash_first=page.order.name == "slash-first"
            ),
        )
    except (VectorIndexError, StorageError) as exc:
        reason = redact(str(exc))[:300]
        log.error("reconcile_index_failed", reason=reason)
        return {"error": reason}
    return repaired.report()


async def _calibrate(run: Run, inventory: PageInventory) -> None:
    """Once a sweep: the tokens a character of chunk text cost, from one records object's lines."""
    calibration = run.calibration
    if calibration.tokens_per_char is not None or not inventory.records:
        return
    storage, bucket = run.invocation.storage, run.outputs.layout.bucket
    chars = tokens = lines = 0
    async for line in storage.iter_lines(bucket, next(iter(inventory.records.values())).key):
        try:
            record = json.loads(line)
            chars += len(record["text"])
            tokens += int(record["tokens"])
        except (ValueError, KeyError, TypeError):
            continue
        lines += 1
        if lines >= _RECORDS_SAMPLE_LINES:
            break
    if chars and tokens:
        calibration.tokens_per_char = tokens / chars


async def _sample(run: Run, part: Totals, work: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """A dry run reads a few documents of each kind nothing calibrates yet (estimate.py), and counts
    them exactly; the rest, returned, are estimated from their size."""
    rest = []
    for key, size in work:
        if not run.calibration.wants_sample(key) or not run.may_start():
            rest.append((key, size))
            continue
        try:
            result = await embed_object(run.invocation, run.bucket, key, dry_run=True)
        except OutOfTime:
            run.stopped = run.stopped or "time budget"
            rest.append((key, size))
            continue
        except Exception as exc:
            run.fail(part, key, exc)
            continue
        part.outcome(result.outcome)
        if result.outcome == "would_embed":
            tokens = run.calibration.tokens_of_text(result.text_chars or 0)
            run.calibration.learn_sample(key, size, tokens)
            part.estimated_tokens += tokens
    return rest
