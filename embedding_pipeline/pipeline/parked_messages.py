"""A queue message that can never be processed, kept with its reason and raw body where an operator
can find it and send it again: `{OUTPUT_PREFIX}_errors/_queue/{message_id}.json`."""

from __future__ import annotations

from embedding_pipeline.bucket_policy import require_default_bucket
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.models import MessageErrorRecord, utc_now
from embedding_pipeline.text_safety import printable

log = get_logger()


async def park_message(invocation: Invocation, message_id: str, body: str, reason: str) -> None:
    bucket = require_default_bucket(invocation.settings, "parking a queue message")
    # A body may hold what JSON cannot (a lone surrogate): kept escaped, so that parking never fails.
    record = MessageErrorRecord(
        reason=printable(reason), message_id=printable(message_id), body=printable(body), failed_at=utc_now()
    )
    key = await invocation.outputs(bucket).park_message(record)
    log.warning("message_parked", message_id=message_id, reason=reason, output=key)
