"""A document's outputs removed, its rows in the vector index with them: a deleted source (unless
the object is back by the time the event arrives), an orphan reconcile found."""

from __future__ import annotations

import structlog

from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()


async def remove_object_outputs(invocation: Invocation, bucket: str, key: str) -> DocumentResult:
    """The source was deleted: remove its records, manifest, checkpoint, error record and index rows."""
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        outputs = invocation.outputs(bucket)
        if (reason := outputs.layout.key_refusal(key)) is not None:
            # It never had outputs, only its refusal record: that goes with the source.
            await outputs.unpark_refused(key)
            log.info("source_refusal_removed", reason=reason)
            return DocumentResult(bucket, key, "refused", reason=reason)
        if await invocation.storage.head(bucket, key) is not None:
            # Deleted and uploaded again before this event arrived: the outputs belong to the new object.
            log.info("source_recreated")
            return DocumentResult(bucket, key, "kept")
        document = outputs.document(key)
        await remove_document(invocation, document)
        log.info("source_outputs_removed")
        return DocumentResult(bucket, key, "removed", output=document.keys.manifest)


async def remove_document(invocation: Invocation, document: DocumentOutputs) -> None:
    """Every output of the document, then its index rows (a failure there is left to reconcile,
    which finds rows without a manifest)."""
    await document.remove()
    if invocation.vector_index is not None:
        from embedding_pipeline.vector_index.follow import forget_document  # noqa: PLC0415

        await forget_document(invocation.vector_index, document.keys.index_scope, document.keys.document)
