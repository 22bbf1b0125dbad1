"""Objects in a bucket embedded: an upload, a reference from a queue message, a sweep's document.

A document that cannot finish before the invocation's deadline is handed to the queue as a
continuation (`embed_or_hand_over`); the next invocation resumes from its checkpoint.
"""

from __future__ import annotations

import structlog

from embedding_pipeline import foreign
from embedding_pipeline.bucket_policy import WorkRefused, reference_bucket
from embedding_pipeline.clients import output_marks
from embedding_pipeline.errors import DocumentBusy, OcrPending, OutOfTime
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.messages import ObjectReference
from embedding_pipeline.outputs.models import recipe
from embedding_pipeline.pipeline.deferral import defer_if_claimed
from embedding_pipeline.pipeline.embed import EmbeddingJob, embed_document
from embedding_pipeline.pipeline.endings import refuse_key
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.pipeline.sources import ObjectSource

log = get_logger()


async def embed_object(
    invocation: Invocation, bucket: str, key: str, *, dry_run: bool = False
) -> DocumentResult:
    """Embed `s3://bucket/key` into its records and manifest; park it if it can never succeed
    (embed.py says what is raised instead)."""
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        outputs = invocation.outputs(bucket)
        if (refused := await refuse_key(outputs, bucket, key, dry_run=dry_run)) is not None:
            return refused
        settings = invocation.settings
        found = await invocation.storage.head(bucket, key)
        if found is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        if (area := found.metadata.get(output_marks.AREA)) is not None:
            # Another deployment's output (its OUTPUT_PREFIX lies inside our SOURCE_PREFIX): never a source.
            deployment = found.metadata.get(output_marks.DEPLOYMENT, "?")
            foreign.ignored(key, f"an output of deployment {deployment} (its outputs under {area})")
            reason = f"an output of deployment {deployment!r}, whose OUTPUT_PREFIX is {area!r}: not a source"
            return DocumentResult(bucket, key, "refused", reason=reason)
        job = EmbeddingJob(
            outputs=outputs.document(key),
            record_id=key,
            recipe=recipe(settings, settings.document_model_uri),
        )
        source = ObjectSource(
            invocation.storage,
            settings,
            bucket,
            found,
            ocr=invocation.ocr,
            ocr_keys=job.outputs.keys,
            dry_run=dry_run,
        )
        return await embed_document(invocation, job, source, dry_run=dry_run)


async def embed_or_hand_over(
    invocation: Invocation, bucket: str, key: str, *, handed_over: int = 0, sweep: str | None = None
) -> DocumentResult:
    """Embed, and if the deadline comes first, send the rest to the queue instead of failing.

    The next invocation resumes from the checkpoint. Without a queue (or past MAX_CONTINUATIONS) the
    OutOfTime error propagates, so the trigger's own retry resumes instead. A document another run
    embeds now is deferred (deferral.py).
    """
    try:
        result = await embed_object(invocation, bucket, key)
    except OutOfTime as stopped:
        settings, queue = invocation.settings, invocation.queue
        continuation = ObjectReference.continuation_of(bucket, key, handed_over, sweep=sweep)
        if (
            queue is None
            or handed_over >= settings.max_continuations
            or not _may_queue(invocation, continuation)
        ):
            raise
        # Vision still reading its pages: the continuation comes when they are likely read.
        delay = stopped.retry_after_s if isinstance(stopped, OcrPending) else 0
        await queue.send(continuation.body(), delay_s=delay)
        invocation.metrics.add("queue_continuations", bucket)
        log.info(
            "document_continued",
            bucket=bucket,
            key=key,
            continuation=continuation.continuation,
            delay_s=delay,
        )
        reason = "Vision OCR still reads its pages" if delay else "out of time"
        return DocumentResult(bucket, key, "continued", reason=f"{reason}: continues from its checkpoint")
    if result.outcome != "claimed":
        return result
    again = ObjectReference(key=key, bucket=bucket, continuation=handed_over, sweep=sweep)
    if _may_queue(invocation, again):
        result = await defer_if_claimed(invocation, result, again.body())
    if result.outcome == "claimed":
        # No queue to come back through: the trigger delivers the event again (its other messages
        # skip cheaply), by when the other run has finished, or its claim lapsed (a crash).
        raise DocumentBusy(f"s3://{bucket}/{key}: {result.reason}")
    return result


def _may_queue(invocation: Invocation, continuation: ObjectReference) -> bool:
    """Whether the continuation would be accepted on arrival; if not, the trigger's retry resumes."""
    try:
        reference_bucket(invocation.settings, continuation.key, continuation.bucket)
    except WorkRefused as exc:
        log.warning("continuation_not_queued", bucket=continuation.bucket, reason=exc.reason)
        return False
    return True
