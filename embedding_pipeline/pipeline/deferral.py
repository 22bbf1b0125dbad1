"""A delivery that found its document claimed by another run (outputs/claims.py) pays nothing: with a
queue, the same message goes back to it, delayed until the other run's claim lapses at the latest,
and is looked at again then (by which time the document is most likely current, and costs a HEAD and
a GET); without one, the other run finishes it, and reconcile repairs whatever a crash left.
"""

from __future__ import annotations

from embedding_pipeline.clients.message_queue import MAX_DELAY_S
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()


async def defer_if_claimed(invocation: Invocation, result: DocumentResult, message: str) -> DocumentResult:
    """`result`, or "deferred" once `message` (the delivery's own body) is back in the queue."""
    if result.outcome != "claimed" or invocation.queue is None:
        return result
    delay = int(min(MAX_DELAY_S, max(1, result.retry_after_s or 1)))
    await invocation.queue.send(message, delay_s=delay)
    log.info("document_deferred", bucket=result.bucket, key=result.key, delay_s=delay)
    return DocumentResult(result.bucket, result.key, "deferred", reason=result.reason, retry_after_s=delay)
