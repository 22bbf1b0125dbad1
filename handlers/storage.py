"""Object Storage trigger: ObjectCreate embeds the object, ObjectDelete removes its outputs.

Everything else is ignored with a log line: ObjectUpdate (an ACL change), keys outside SOURCE_PREFIX,
and keys under OUTPUT_PREFIX, which the function itself wrote (a trigger loop otherwise).
A batch's messages run concurrently under the instance's one rate limiter; if any failed
transiently, the invocation raises after the rest finished, so the trigger delivers the batch again
and the finished documents skip cheaply (their manifests match).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.remove import remove_object_outputs
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.pipeline.work import embed_or_hand_over
from embedding_pipeline.runtime import Runtime
from handlers.batch import gather_results, is_full, summary
from handlers.events import StorageMessage
from handlers.validation import validation_message

log = get_logger()


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = event.get("messages", [])
    async with runtime.invocation(context, more_work_follows=is_full(messages)) as invocation:
        return await _handle(invocation, messages)


async def _handle(invocation: Invocation, messages: list[Any]) -> dict[str, Any]:
    tasks = []
    ignored = 0
    for raw in messages:
        try:
            message = StorageMessage.model_validate(raw)
        except ValidationError as exc:
            log.error("storage_event_invalid", reason=validation_message(exc))
            ignored += 1
            continue
        work = _route(invocation, message)
        if work is None:
            ignored += 1
        else:
            tasks.append(work)
    results = await gather_results(tasks)
    return {"documents": [summary(result) for result in results], "ignored": ignored}


def _route(invocation: Invocation, message: StorageMessage) -> Awaitable[DocumentResult] | None:
    settings = invocation.settings
    bucket, key = message.details.bucket_id, message.details.object_id
    if invocation.outputs(bucket).layout.holds(bucket, key):
        log.info("event_ignored", reason="output_prefix", key=key, action=message.action)
        return None
    if not key.startswith(settings.source_prefix):
        log.info("event_ignored", reason="outside_source_prefix", key=key, action=message.action)
        return None
    if message.action == "ObjectCreate":
        return embed_or_hand_over(invocation, bucket, key)
    if message.action == "ObjectDelete":
        return remove_object_outputs(invocation, bucket, key)
    log.info("event_ignored", reason="not_content_change", key=key, action=message.action)
    return None
