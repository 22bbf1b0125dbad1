"""Work messages at the edge: a queue message's body (or an HTTP submission) parsed into a typed
message (embedding_pipeline/messages.py), checked against the bucket policy, and turned into the
core call it asks for."""

from __future__ import annotations

from collections.abc import Awaitable

from embedding_pipeline.bucket_policy import reference_bucket, sweep_refusal
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.messages import InlineRecord, ReconcileStep, WorkMessage
from embedding_pipeline.pipeline.inline import embed_inline
from embedding_pipeline.pipeline.objects import embed_or_hand_over
from embedding_pipeline.pipeline.result import DocumentResult
from handlers.batch import Accepted


def perform(invocation: Invocation, message: WorkMessage) -> Accepted:
    """The core call `message` asks for; WorkRefused if it names a bucket or key the function may
    not read."""
    settings = invocation.settings
    if isinstance(message, InlineRecord):
        return Accepted(embed_inline(invocation, message))
    if isinstance(message, ReconcileStep):
        step = message.reconcile
        if (refusal := sweep_refusal(settings, step.bucket, step.prefix)) is not None:
            raise refusal
        return Accepted(_sweep_step(invocation, message))
    bucket = reference_bucket(settings, message.key, message.bucket)
    work = embed_or_hand_over(
        invocation, bucket, message.key, handed_over=message.continuation, sweep=message.sweep
    )
    return Accepted(work, message.sweep, bucket if message.sweep is not None else None)


def _sweep_step(invocation: Invocation, message: ReconcileStep) -> Awaitable[DocumentResult]:
    # Imported here: only a sweep's steps need reconcile.
    from embedding_pipeline.pipeline.reconcile.sweep import run_step  # noqa: PLC0415

    return run_step(invocation, message.reconcile)
