"""A text that arrived in a queue message or an HTTP submission, embedded as the document
`_inline/{id}` in the default bucket.

If the run stops early, the submission is kept beside its checkpoint, so that reconcile finishes it.
"""

from __future__ import annotations

import structlog

from embedding_pipeline.bucket_policy import require_default_bucket
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.messages import InlineRecord
from embedding_pipeline.outputs.models import recipe
from embedding_pipeline.outputs.names import inline_document
from embedding_pipeline.pipeline.deferral import defer_if_claimed
from embedding_pipeline.pipeline.embed import EmbeddingJob, embed_document
from embedding_pipeline.pipeline.endings import refuse_key
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.pipeline.sources import InlineSource


async def embed_inline(invocation: Invocation, submission: InlineRecord) -> DocumentResult:
    """Embed `submission.text` with its metadata and model (None: the document model); while another
    run embeds this id, the submission goes back to the queue if there is one (deferral.py)."""
    settings = invocation.settings
    with structlog.contextvars.bound_contextvars(inline_id=submission.id):
        bucket = require_default_bucket(settings, "an inline text")
        document = inline_document(submission.id)
        outputs = invocation.outputs(bucket)
        if (refused := await refuse_key(outputs, bucket, document)) is not None:
            return refused
        job = EmbeddingJob(
            outputs=outputs.inline(submission.id),
            record_id=submission.id,
            recipe=recipe(settings, settings.resolve_model(submission.model)),
            metadata=dict(submission.metadata),
            submission=submission.body(),
        )
        result = await embed_document(invocation, job, InlineSource(bucket, document, submission.text))
        return await defer_if_claimed(invocation, result, submission.body())
