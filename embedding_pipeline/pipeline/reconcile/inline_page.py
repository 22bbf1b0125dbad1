"""A page of inline texts (`_inline/{id}`): those whose run stopped early are finished from the text
kept beside their checkpoint (here, through the queue, or only estimated); with a vector index,
their rows are brought in step too."""

from __future__ import annotations

from pydantic import ValidationError

from embedding_pipeline.clients.message_queue import MAX_BATCH_ENTRIES
from embedding_pipeline.errors import OutOfTime
from embedding_pipeline.logs import get_logger
from embedding_pipeline.messages import InlineRecord
from embedding_pipeline.pipeline.inline import embed_inline
from embedding_pipeline.pipeline.reconcile.actions import SweepRun
from embedding_pipeline.pipeline.reconcile.index_pages import repair_page_index
from embedding_pipeline.pipeline.reconcile.inventory import PageInventory, documents_range, list_outputs
from embedding_pipeline.pipeline.reconcile.page import PageDone
from embedding_pipeline.pipeline.reconcile.ranges import KeyRange
from embedding_pipeline.pipeline.reconcile.totals import Totals

log = get_logger()


async def inline_page(run: SweepRun, rest: KeyRange, *, page_size: int) -> PageDone:
    """The next page of inline texts after `rest.after`."""
    invocation, layout = run.invocation, run.outputs.layout
    storage, index = invocation.storage, invocation.vector_index
    # Without an index only checkpoints matter: walking every inline text's manifest would not.
    driver = layout.records_and_manifests if index is not None else layout.checkpoint_folders
    page, last = await documents_range(storage, layout, rest, driver, page_size)
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
    part.index_add(await repair_page_index(run, inventory, set(inventory.manifests), skip=set(unfinished)))
    complete = await _finish_inline(run, part, unfinished)
    part.pages = int(complete)
    part.found_add({"inline_unfinished": len(unfinished)})
    return PageDone(page, last, complete, part)


async def _finish_inline(run: SweepRun, part: Totals, documents: list[str]) -> bool:
    """Inline texts whose run stopped early: finished here, handed to the queue, or estimated."""
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
            if len(handed) == MAX_BATCH_ENTRIES:
                await _hand(run, part, handed)
        else:
            try:
                result = await embed_inline(run.invocation, submission)
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


async def _hand(run: SweepRun, part: Totals, bodies: list[str]) -> None:
    queue = run.invocation.queue
    assert queue is not None
    await queue.send_batch(list(bodies))
    part.outcome("handed_to_queue", count=len(bodies))
    bodies.clear()
