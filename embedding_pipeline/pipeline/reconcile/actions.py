"""What a page of a sweep does with what it found: remove orphans, record refusals, and get the documents that
need it embedded, here (`embed_here`), by the queue's instances (`queue_refs`), or only estimated
(`estimate`, a dry run).

A configuration problem (credentials, roles, the model) stops the run at once and touches nothing
more; so do three document failures in a row (then the environment, not the documents, is
failing). Each other failure is the document's: recorded, and the run goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from embedding_pipeline.clients.message_queue import MAX_BATCH_ENTRIES
from embedding_pipeline.errors import OutOfTime, PipelineError, StorageError, is_configuration_problem
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.messages import ObjectReference
from embedding_pipeline.outputs.checkpoints import delete_checkpoint
from embedding_pipeline.outputs.claims import held
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.endings import refuse_key
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.pipeline.reconcile.estimate import Calibration
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.pipeline.remove import remove_document
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.redact import redact

log = get_logger()

Mode = Literal["inline", "queue", "dry_run"]
OnSent = Callable[[str, Totals], Awaitable[None]]  # (last key queued, the page's part so far)
_FAILURES_IN_A_ROW = 3
_DOCUMENTS_AT_ONCE = 4  # embedded here side by side, sharing the instance's pace
_BYTES_AT_ONCE = 16 * 1024 * 1024  # ...unless they are large: memory holds a document several times over


@dataclass(slots=True)
class SweepRun:
    """One invocation's part of a sweep: how it works, and what may stop it."""

    invocation: Invocation
    bucket: str
    outputs: BucketOutputs
    mode: Mode
    calibration: Calibration
    max_tokens: int
    tokens: int = 0  # spent (or, queued, estimated) by this run: its budget
    sweep_tag: str | None = None  # on the references it queues, for the report
    # The bucket and prefix swept (state.py): where its pages keep what they verified.
    prefix_id: str | None = None
    stopped: str | None = None
    in_a_row: int = 0

    @property
    def dry_run(self) -> bool:
        return self.mode == "dry_run"

    def may_start(self) -> bool:
        """Whether another document may be started: the token budget is for documents only (a
        page with nothing to pay for is walked whatever is left of it)."""
        if self.stopped is None and self.tokens >= self.max_tokens:
            self.stopped = "token budget"
        return self.may_walk()

    def may_walk(self) -> bool:
        """Whether another page may be started."""
        if self.stopped is None and self.invocation.deadline.expired():
            self.stopped = "time budget"
        return self.stopped is None

    def fail(self, part: Totals, key: str, exc: Exception) -> None:
        """One document failed: recorded, and the run goes on unless no document could succeed."""
        code = getattr(exc, "code", type(exc).__name__)
        reason = redact(str(exc))[:300]
        part.failure(key, code, reason)
        self.in_a_row += 1
        if is_configuration_problem(exc):
            # One clear line: every document would fail the same way, and none is parked for it.
            log.error("reconcile_configuration_problem", error=code, reason=reason)
            self.stopped = f"configuration problem: {code}"
        elif self.in_a_row >= _FAILURES_IN_A_ROW:
            self.stopped = f"{self.in_a_row} failures in a row, the last: {code}"
        else:
            log.warning("reconcile_document_failed", key=key, error=code, reason=reason)

    def done(self, part: Totals, result: DocumentResult) -> None:
        part.outcome(result.outcome, tokens=result.tokens)
        part.api_requests += result.embedded
        self.tokens += result.tokens
        self.in_a_row = 0


async def remove_orphans(run: SweepRun, part: Totals, orphans: Iterable[str]) -> None:
    """Outputs whose source is gone, unless it is back by now (uploaded since the listing)."""
    storage = run.invocation.storage
    for key in sorted(orphans):
        if run.stopped is not None:
            return
        try:
            if await storage.head(run.bucket, key) is not None:
                log.info("orphan_source_back", key=key)
                continue
            await remove_document(run.invocation, run.outputs.document(key))
        except StorageError as exc:
            run.fail(part, key, exc)
            continue
        part.orphans_removed += 1


async def remove_leftover_checkpoints(run: SweepRun, part: Totals, documents: Iterable[str]) -> None:
    """Checkpoints beside documents whose manifest is current and that no run works on now (no live
    claim: outputs/claims.py): what a run left that ended without needing them (a crash after its
    manifest, a superseded run whose document another finished)."""
    storage = run.invocation.storage
    for document in sorted(documents):
        if run.stopped is not None:
            return
        outputs = run.outputs.document(document)
        try:
            if await held(storage, outputs.keys):
                continue
            await delete_checkpoint(storage, outputs.keys)
        except StorageError as exc:
            run.fail(part, document, exc)
            continue
        part.checkpoints_removed += 1


async def record_refusals(run: SweepRun, part: Totals, refused: Iterable[str]) -> None:
    """A source whose key cannot have outputs gets its error record once, where it fits."""
    storage, layout = run.invocation.storage, run.outputs.layout
    for key in refused:
        try:
            if await storage.head(layout.bucket, layout.refusal(key)) is None:
                await refuse_key(run.outputs, run.bucket, key)
        except StorageError as exc:
            run.fail(part, key, exc)


async def embed_here(run: SweepRun, part: Totals, documents: list[tuple[str, int]]) -> bool:
    """Embed (key, size) documents in this invocation, a few side by side (they share the instance's
    pace) once the first has succeeded: a configuration problem stops the run after one document,
    not after a handful. False if the run stopped first."""
    gate = _Gate()
    started: list[asyncio.Task[None]] = []

    async def one(key: str, size: int) -> None:
        try:
            result = await embed_object(run.invocation, run.bucket, key)
        except OutOfTime:
            run.stopped = run.stopped or "time budget"  # not done: the next run starts with it
        except Exception as exc:
            run.fail(part, key, exc)
        else:
            run.done(part, result)
            gate.widen()
        finally:
            await gate.release(size)

    for key, size in documents:
        await gate.acquire(size)
        if not run.may_start():
            await gate.release(size)
            break
        started.append(asyncio.create_task(one(key, size)))
    await asyncio.gather(*started)
    return run.stopped is None


class _Gate:
    """One document at a time until one succeeds; then at most _DOCUMENTS_AT_ONCE documents and
    _BYTES_AT_ONCE bytes at once (a larger one alone)."""

    def __init__(self) -> None:
        self._documents = 0
        self._bytes = 0
        self._width = 1
        self._changed = asyncio.Condition()

    def widen(self) -> None:
        self._width = _DOCUMENTS_AT_ONCE

    async def acquire(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: (
                    self._documents == 0
                    or (self._documents < self._width and self._bytes + size <= _BYTES_AT_ONCE)
                )
            )
            self._documents += 1
            self._bytes += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self._documents -= 1
            self._bytes -= size
            self._changed.notify_all()


async def queue_refs(
    run: SweepRun,
    part: Totals,
    documents: list[tuple[str, int]],
    *,
    on_sent: OnSent,
) -> tuple[bool, str | None]:
    """Send (key, size) references to the queue, ten a request, in key order; each batch's keys
    count their estimated tokens against the budget. `on_sent(last key, part)` after each batch lets
    the sweep remember how far it got. Whether all were sent before the run stopped, and the last
    key sent."""
    queue = run.invocation.queue
    assert queue is not None
    last = None
    for start in range(0, len(documents), MAX_BATCH_ENTRIES):
        if not run.may_start():
            return False, last
        batch = documents[start : start + MAX_BATCH_ENTRIES]
        bodies = [
            ObjectReference(key=key, bucket=run.bucket, sweep=run.sweep_tag).body() for key, _size in batch
        ]
        try:
            await queue.send_batch(bodies)
        except PipelineError as exc:
            run.fail(part, batch[0][0], exc)
            run.stopped = run.stopped or f"queue: {getattr(exc, 'code', 'error')}"
            return False, last
        estimated = sum(run.calibration.estimate(key, size) for key, size in batch)
        part.queued += len(batch)
        part.estimated_tokens += estimated
        run.tokens += estimated
        last = batch[-1][0]
        await on_sent(last, part)
    return True, last


def estimate(run: SweepRun, part: Totals, documents: list[tuple[str, int]]) -> None:
    """A dry run's figure for documents it does not read: size times the kind's tokens per byte."""
    limit = run.invocation.settings.max_source_bytes
    for key, size in documents:
        if size > limit:
            part.outcome("would_park")
            continue
        tokens = run.calibration.estimate(key, size)
        part.outcome("would_embed")
        part.estimated_tokens += tokens
        if run.invocation.settings.ocr_enabled:
            part.estimated_ocr_pages += run.calibration.estimate_ocr_pages(key, size)
