"""Work messages carried out: inline records, object references, and hand-overs of large documents.

A document that cannot finish before the invocation's deadline is handed to the queue as a
continuation; the next invocation resumes from its checkpoint. A message that can never succeed is
parked with its reason and raw body, and the rest of its batch goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from embedding_pipeline.errors import ConfigurationError, OutOfTime
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import inline_document
from embedding_pipeline.outputs.models import MessageErrorRecord, SourceRef, settings_fingerprint, utc_now
from embedding_pipeline.pipeline.embed import Target, embed_document, embed_object, refuse_unsafe
from embedding_pipeline.pipeline.prepare import Loaded
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import Limits
from embedding_pipeline.stages.documents.model import whole
from embedding_pipeline.stages.vectorize import content_hash
from embedding_pipeline.text_safety import printable
from embedding_pipeline.work_messages import (
    WORK_MESSAGE,
    InlineRecord,
    ObjectReference,
    ReconcileStep,
    WorkMessage,
    WorkRefused,
    invalid_reason,
    source_bucket_of,
)

log = get_logger()


def perform(invocation: Invocation, work: WorkMessage) -> Awaitable[DocumentResult]:
    """The work a message asks for; WorkRefused if it names a bucket the function may not read."""
    if isinstance(work, InlineRecord):
        return embed_inline(invocation, work.id, work.text, metadata=work.metadata, model=work.model)
    if isinstance(work, ReconcileStep):
        return _reconcile_step(invocation, work)
    bucket = source_bucket_of(invocation.settings, work)
    return embed_or_hand_over(invocation, bucket, work.key, handed_over=work.continuation, sweep=work.sweep)


def _reconcile_step(invocation: Invocation, work: ReconcileStep) -> Awaitable[DocumentResult]:
    """A step of a reconcile sweep, for a bucket and prefix the timer itself could reconcile."""
    # Imported here: only a sweep's steps need reconcile.
    from embedding_pipeline.pipeline.reconcile import run_step  # noqa: PLC0415

    settings, step = invocation.settings, work.reconcile
    if (refusal := settings.bucket_refusal(step.bucket)) is not None:
        raise WorkRefused(refusal, "bucket_not_allowed")
    if not step.prefix.startswith(settings.source_prefix):
        raise WorkRefused(f"prefix {step.prefix!r} is outside SOURCE_PREFIX", "key_not_allowed")
    return run_step(invocation, step)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The work a message asks for, and the sweep to tell what became of it (a reference it queued)."""

    work: Awaitable[DocumentResult]
    sweep: str | None = None
    bucket: str | None = None


async def accept_message(invocation: Invocation, message_id: str, body: str) -> Accepted | None:
    """The work a queue message's body asks for, or None once a body that can never succeed is parked."""
    try:
        message = WORK_MESSAGE.validate_json(body)
        work = perform(invocation, message)
    except ValidationError as exc:
        reason = invalid_reason(exc)
    except WorkRefused as exc:
        reason = exc.reason
    else:
        if isinstance(message, ObjectReference) and message.sweep is not None:
            return Accepted(work, message.sweep, source_bucket_of(invocation.settings, message))
        return Accepted(work)
    await park_message(invocation, message_id, body, reason)
    return None


async def park_message(invocation: Invocation, message_id: str, body: str, reason: str) -> None:
    """Keep a message that can never be processed, with why, where an operator can find and resend it."""
    bucket = invocation.settings.default_bucket
    if bucket is None:
        raise ConfigurationError("parking a queue message needs OUTPUT_BUCKET or SOURCE_BUCKET")
    # A body may hold what JSON cannot (a lone surrogate): kept escaped, so that parking never fails.
    record = MessageErrorRecord(
        reason=printable(reason),
        message_id=printable(message_id),
        body=printable(body),
        failed_at=utc_now(),
    )
    key = await invocation.outputs(bucket).park_message(record)
    log.warning("message_parked", message_id=message_id, reason=reason, output=key)


async def embed_or_hand_over(
    invocation: Invocation, bucket: str, key: str, *, handed_over: int = 0, sweep: str | None = None
) -> DocumentResult:
    """Embed, and if the deadline comes first, send the rest to the queue instead of failing.

    The next invocation resumes from the checkpoint. Without a queue (or past MAX_CONTINUATIONS) the
    OutOfTime error propagates, so the trigger's own retry resumes instead.
    """
    try:
        return await embed_object(invocation, bucket, key)
    except OutOfTime:
        settings, queue = invocation.settings, invocation.queue
        continuation = ObjectReference.continuation_of(bucket, key, handed_over, sweep=sweep)
        if (
            queue is None
            or handed_over >= settings.max_continuations
            or not _may_queue(settings, continuation)
        ):
            raise
        await queue.send(continuation.body())
        log.info("document_continued", bucket=bucket, key=key, continuation=continuation.continuation)
        return DocumentResult(bucket, key, "continued", reason="out of time: continues from its checkpoint")


def _may_queue(settings: Settings, continuation: ObjectReference) -> bool:
    """Whether the continuation would be accepted on arrival; if not, the trigger's retry resumes."""
    try:
        source_bucket_of(settings, continuation)
    except WorkRefused as exc:
        log.warning("continuation_not_queued", bucket=continuation.bucket, reason=exc.reason)
        return False
    return True


async def embed_inline(
    invocation: Invocation,
    record_id: str,
    text: str,
    *,
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
) -> DocumentResult:
    """Embed a text that arrived in a message or request, as the document `_inline/{id}`.

    If the run stops early, the text is kept beside its checkpoint, so that reconcile finishes it.
    """
    settings = invocation.settings
    with structlog.contextvars.bound_contextvars(inline_id=record_id):
        bucket = settings.default_bucket
        if bucket is None:
            raise ConfigurationError("inline records need OUTPUT_BUCKET or SOURCE_BUCKET")
        document = inline_document(record_id)
        if (refused := await refuse_unsafe(invocation, bucket, document)) is not None:
            return refused
        model_uri = settings.resolve_model(model)
        # The content hash plays the ETag's part: the same text and settings cost nothing the second time.
        source = SourceRef(bucket=bucket, key=document, etag=content_hash(text)[:32], size=len(text))
        submission = InlineRecord(id=record_id, text=text, metadata=dict(metadata or {}), model=model)
        target = Target(
            outputs=invocation.outputs(bucket).inline(record_id),
            source=source,
            record_id=record_id,
            model=model_uri,
            fingerprint=settings_fingerprint(settings, model_uri),
            metadata=dict(metadata or {}),
            submission=submission.body(),
        )

        async def load(_limits: Limits) -> Loaded:
            return Loaded(whole(text, "text"), source)

        return await embed_document(invocation, target, load, still_current=None, dry_run=False)
