"""Object Storage trigger: ObjectCreate embeds the object, ObjectDelete removes its outputs.

A document's metadata sidecar (`KEY.metadata.json`: written, replaced or deleted) is no source of
its own: its event re-processes `KEY`, which pays for no text when only the metadata changed (and
does nothing but log `source_missing` when `KEY` does not exist).

Everything else is ignored with a log line: ObjectUpdate (an ACL change), and keys that are no
sources (bucket_policy.py: outside SOURCE_PREFIX, or under OUTPUT_PREFIX, which the function itself
wrote: a trigger loop otherwise). The batch runs through the one batch loop (batch.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from embedding_pipeline.bucket_policy import document_of_sidecar, not_a_source
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.objects import embed_or_hand_over
from embedding_pipeline.pipeline.remove import remove_object_outputs
from embedding_pipeline.runtime import Runtime
from handlers.batch import Accepted, process_batch, summary
from handlers.events import StorageMessage
from handlers.validation import validation_message

log = get_logger()


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = event.get("messages", [])
    async with runtime.invocation(context, "storage") as invocation:

        async def accept(_number: int, raw: Any) -> Accepted | None:
            return _accept(invocation, raw)

        batch = await process_batch(invocation, messages, accept)
    return {"documents": [summary(result) for _, result in batch.done], "ignored": batch.set_aside}


def _accept(invocation: Invocation, raw: Any) -> Accepted | None:
    try:
        message = StorageMessage.model_validate(raw)
    except ValidationError as exc:
        log.error("storage_event_invalid", reason=validation_message(exc))
        return None
    bucket, key = message.details.bucket_id, message.details.object_id
    document = document_of_sidecar(key)
    sidecar_of_source = document is not None and not_a_source(invocation.settings, document) is None
    if document is not None and sidecar_of_source and message.action in ("ObjectCreate", "ObjectDelete"):
        log.info("sidecar_changed", key=key, document=document, action=message.action)
        return Accepted(embed_or_hand_over(invocation, bucket, document))
    if (found := not_a_source(invocation.settings, key)) is not None:
        log.info("event_ignored", reason=found.code, key=key, action=message.action)
        return None
    if message.action == "ObjectCreate":
        return Accepted(embed_or_hand_over(invocation, bucket, key))
    if message.action == "ObjectDelete":
        return Accepted(remove_object_outputs(invocation, bucket, key))
    log.info("event_ignored", reason="not_content_change", key=key, action=message.action)
    return None
