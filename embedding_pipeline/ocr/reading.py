"""The pages only OCR can read, read by Yandex Vision once per version of a document.

A parsed document names its unread pages (an image's one page, a PDF's pages without a usable text
layer: stages/documents/text_layer.py). Here they are read, each page paid for once:

1. What was read before comes from `{K}.ocr.json` (outputs/ocr_pages.py), kept by the source's ETag
   and the recognition's settings; so do the operations already under way.
2. An image, and a PDF batch of one page, are recognised at once (`recognizeText`). The other
   unread pages go in PDFs of up to 200 pages (batches.py) to `recognizeTextAsync`; each operation is
   written down the moment Vision accepts it, and only then waited for.
3. Operations are polled until they are done, then their pages read. If the invocation must end
   first, OcrPending hands the document on (pipeline/objects.py: a continuation, delayed): the next
   invocation collects the same operations. An operation Vision no longer knows (results are kept 3
   days) is sent again; one that failed for the document's content parks it (OcrRefused).

With OCR_ENABLED=false, unread pages are skipped (logged), and a document with nothing else is
parked saying so. More unread pages than OCR_MAX_PAGES park the document before any is paid for. A
dry run reads what is cached and counts the rest, paying nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from embedding_pipeline.clients.ocr import OcrCall
from embedding_pipeline.errors import (
    DocumentTooLarge,
    OcrError,
    OcrOff,
    OcrPending,
    OcrRefused,
    OutOfTime,
)
from embedding_pipeline.logs import get_logger
from embedding_pipeline.ocr.batches import pdf_batches
from embedding_pipeline.ocr.reader import NO_OCR, OcrReader, OcrTally
from embedding_pipeline.outputs.document_keys import DocumentKeys
from embedding_pipeline.outputs.ocr_pages import OcrPages, PendingOperation, read_ocr_pages, write_ocr_pages
from embedding_pipeline.stages.documents.model import ParsedDocument, has_text
from embedding_pipeline.stages.documents.pages import with_recognised_pages

FIRST_POLL_S = 1.0  # an operation is looked at again after this long, then 1.5 times longer each time
LONGEST_POLL_S = 5.0
_MAX_DELAY_S = 900  # Message Queue's longest delay
_INVALID_ARGUMENT = 3  # google.rpc.Code of an operation that failed for what it was given

log = get_logger()


@dataclass(frozen=True, slots=True)
class ReadPages:
    document: ParsedDocument  # with every page it could read
    tally: OcrTally = NO_OCR


async def read_unread_pages(
    reader: OcrReader | None,
    keys: DocumentKeys | None,
    source_etag: str,
    document: ParsedDocument,
    data: bytes,
    *,
    dry_run: bool = False,
) -> ReadPages:
    """`document` with its unread pages read (see the module's docstring); `keys`: where the
    document's outputs are (None, as `reader`: OCR is not there, the pages are skipped)."""
    unread = list(document.unread_pages)
    if not unread:
        return ReadPages(document)
    if reader is None or keys is None or not reader.settings.ocr_enabled:
        return ReadPages(_without_ocr(document, len(unread)))
    settings = reader.settings
    if len(unread) > settings.ocr_max_pages:
        raise DocumentTooLarge(f"{len(unread)} pages need OCR: over OCR_MAX_PAGES={settings.ocr_max_pages}")
    state = await read_ocr_pages(
        reader.storage,
        keys,
        source_etag=source_etag,
        model=settings.ocr_model,
        languages=settings.ocr_language_codes,
    )
    if dry_run:
        to_recognise = sum(1 for page in unread if page not in state.pages and not state.waiting_for(page))
        return ReadPages(with_recognised_pages(document, state.pages), OcrTally(to_recognise=to_recognise))
    if any(page not in state.pages for page in unread):  # all read before: no request, no quota
        await reader.join_quota(keys.bucket)
    try:
        await _read(_Job(reader, reader.call(), keys, state, data), document, unread)
    except OutOfTime as exc:
        if isinstance(exc, OcrPending):
            raise
        raise OcrPending(f"Vision OCR reading pages at the invocation's deadline: {exc}", 5) from None
    read = with_recognised_pages(document, state.pages)
    log.info("ocr_pages_read", pages=len(unread), paid_pages=state.recognized_pages, requests=state.requests)
    return ReadPages(read, OcrTally(pages=state.recognized_pages, requests=state.requests))


def _without_ocr(document: ParsedDocument, unread: int) -> ParsedDocument:
    if has_text(document.text):
        log.warning("ocr_off_pages_skipped", pages=unread)
        return document
    if document.format == "image":
        raise OcrOff("an image is read by OCR, and OCR is off (OCR_ENABLED=false)")
    raise OcrOff(f"no usable text layer on its {unread} pages, and OCR is off (OCR_ENABLED=false)")


@dataclass(slots=True)
class _Job:
    """One document's reading: who reads, where its state is kept, what it is."""

    reader: OcrReader
    call: OcrCall
    keys: DocumentKeys
    state: OcrPages
    data: bytes

    async def save(self) -> None:
        await write_ocr_pages(self.reader.storage, self.keys, self.state)


async def _read(job: _Job, document: ParsedDocument, unread: list[int]) -> None:
    """Every unread page into the job's state, written down as it goes."""
    state = job.state
    while True:
        missing = [page for page in unread if page not in state.pages and not state.waiting_for(page)]
        if document.format == "image" and missing:
            await _paid(job, _recognise_image(job))
        elif missing:
            await _send_pdf_pages(job, missing)
        if not state.pending:
            return
        await _collect(job)


async def _recognise_image(job: _Job) -> None:
    mime = "image/png" if job.data.startswith(b"\x89PNG") else "image/jpeg"
    job.state.pages[1] = (await job.reader.client.recognize(job.data, mime, job.call)).text


async def _send_pdf_pages(job: _Job, missing: list[int]) -> None:
    client, state = job.reader.client, job.state
    for batch in pdf_batches(job.data, missing):
        if len(batch.pages) == 1:

            async def one(page: int = batch.pages[0], pdf: bytes = batch.pdf) -> None:
                state.pages[page] = (await client.recognize(pdf, "application/pdf", job.call)).text

            await _paid(job, one())
            continue

        async def start(pages: tuple[int, ...] = batch.pages, pdf: bytes = batch.pdf) -> None:
            operation = await client.start(pdf, len(pages), job.call)
            state.pending.append(PendingOperation(id=operation, pages=list(pages), started_at=time.time()))
            log.info("ocr_operation_started", operation=operation, pages=len(pages))

        await _paid(job, start())


async def _collect(job: _Job) -> None:
    """Wait for the pending operations and read their pages; OcrPending if the deadline comes first.

    The first look at an operation is when its pages would be read at OCR's pace (each page one
    recognition of OCR_RPS), then every second or so: a poll is not a recognition, and looking late
    would leave the quota unused."""
    reader, state = job.reader, job.state
    late = FIRST_POLL_S
    while state.pending:
        for operation in list(state.pending):
            found = await reader.client.state(operation.id, job.call)
            if found is None:  # expired or unknown: its pages are sent again
                log.warning("ocr_operation_gone", operation=operation.id)
                state.pending.remove(operation)
                await job.save()
                return
            if found.done and found.error is not None:
                state.pending.remove(operation)
                await job.save()
                what = f"pages {operation.pages[0]}-{operation.pages[-1]}"
                if found.error_code == _INVALID_ARGUMENT:
                    raise OcrRefused(f"Vision OCR could not read {what}: {found.error}")
                raise OcrError(f"Vision OCR's operation on {what} failed: {found.error}")
            if found.done:
                await _paid(job, _take_results(job, operation))
        if not state.pending:
            return
        ahead = _expected_done(state, reader.settings.ocr_rps) - time.time()
        wait = min(LONGEST_POLL_S, ahead) if ahead > FIRST_POLL_S else late
        if reader.deadline.remaining() <= wait:
            pages = sum(len(operation.pages) for operation in state.pending)
            later = min(_MAX_DELAY_S, max(1, math.ceil(ahead)))
            raise OcrPending(f"Vision OCR still reads {pages} pages", later)
        await asyncio.sleep(wait)
        if ahead <= FIRST_POLL_S:
            late = min(LONGEST_POLL_S, late * 1.5)


def _expected_done(state: OcrPages, rps: float) -> float:
    """When the first pending operation's pages would all be read at OCR's pace (Unix time)."""
    return min(operation.started_at + len(operation.pages) / rps for operation in state.pending)


async def _take_results(job: _Job, operation: PendingOperation) -> None:
    pages = await job.reader.client.results(operation.id, job.call)
    if pages is None:
        return  # done, but not readable yet: looked at again with the others
    state = job.state
    for result in pages:
        if 0 <= result.page < len(operation.pages):
            state.pages[operation.pages[result.page]] = result.text
    for page in operation.pages:  # a page Vision returned nothing for is blank
        state.pages.setdefault(page, "")
    state.pending.remove(operation)


async def _paid(job: _Job, work: Awaitable[None]) -> None:
    """Run `work` (requests to Vision), count what it paid into the state, and write the state
    down: when it succeeded, and when it failed after paying (an operation accepted is never
    forgotten). A failure before Vision accepted any page (the role missing, say) writes nothing."""
    usage, state = job.reader.usage, job.state
    pages, requests = usage.pages, usage.requests
    done = False
    try:
        await work
        done = True
    finally:
        paid = usage.pages - pages  # pages Vision accepted: billed
        state.recognized_pages += paid
        state.requests += usage.requests - requests
        if done or paid:
            await job.save()
