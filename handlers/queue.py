"""Message Queue trigger: each message's body is an object reference or an inline record.

    {"key": "incoming/a.md", "bucket": "docs"}         embedded exactly like an upload ("bucket"
                                                      defaults to SOURCE_BUCKET); "continuation": n
                                                      marks the n-th hand-over of a large document
    {"id": "faq-17", "text": "...", "metadata": {...}, "model": "doc" | "query" | <URI>}
                                                      embedded to {OUTPUT_PREFIX}_inline/{id}.jsonl

A poisoned message (not JSON, wrong schema, empty or oversized text, unsafe key) is parked under
{OUTPUT_PREFIX}_errors/_queue/{message_id}.json with its reason and raw body, and the batch goes on.
A batch is all-or-nothing for the platform: if any message failed transiently, the invocation raises
after the rest finished, so the queue delivers the batch again; finished messages then skip cheaply.
The queue's redrive policy (maxReceiveCount, then the dead-letter queue) is the last line of defence.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline import embed_inline, embed_or_hand_over
from embedding_pipeline.records import ERRORS_DIR, utc_now
from embedding_pipeline.run import DocumentResult, Run
from embedding_pipeline.runtime import Runtime
from handlers.batch import first_error, gather_results, summary
from handlers.events import QueueMessage
from handlers.payloads import InlineRecord, MessageBody

log = get_logger()


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    async with runtime.invocation(context) as run:
        bucket = run.settings.default_bucket
        if bucket is None:
            # Raised, not parked: there is nowhere to park, and the queue's DLQ keeps the messages.
            raise ConfigurationError("the queue trigger needs OUTPUT_BUCKET or SOURCE_BUCKET")
        tasks: list[Awaitable[DocumentResult]] = []
        parked = 0
        for number, raw in enumerate(event.get("messages", [])):
            work = await _prepare(run, bucket, raw, number)
            if work is None:
                parked += 1
            else:
                tasks.append(work)
        results = await gather_results(tasks)
        return {"documents": [summary(result) for result in results], "parked": parked}


async def _prepare(run: Run, bucket: str, raw: Any, number: int) -> Awaitable[DocumentResult] | None:
    """The work for one message, or None once a poisoned message is parked."""
    try:
        message = QueueMessage.model_validate(raw)
    except ValidationError as exc:
        await _park(run, bucket, f"message-{number}", json.dumps(raw, default=str)[:4096], first_error(exc))
        return None
    body, message_id = message.details.message.body, message.details.message.message_id or f"message-{number}"
    try:
        parsed = MessageBody.validate_json(body)
    except ValidationError as exc:
        await _park(run, bucket, message_id, body, _reason(exc))
        return None
    if isinstance(parsed, InlineRecord):
        return embed_inline(run, parsed.id, parsed.text, metadata=parsed.metadata, model=parsed.model)
    source_bucket = parsed.bucket or run.settings.source_bucket
    if source_bucket is None:
        await _park(run, bucket, message_id, body, "no bucket in the message and SOURCE_BUCKET is not set")
        return None
    if (refusal := run.settings.bucket_refusal(source_bucket)) is not None:
        await _park(run, bucket, message_id, body, refusal)
        return None
    return embed_or_hand_over(run, source_bucket, parsed.key, continuation=parsed.continuation)


def _reason(exc: ValidationError) -> str:
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return "body is not JSON"
    # A union reports errors for every member; the useful one is about a field that was given.
    given = [error for error in errors if error["type"] not in ("missing", "extra_forbidden")]
    error = (given or errors)[0]
    where = ".".join(str(part) for part in error["loc"][1:])  # drop the union member's name
    return f"{where}: {error['msg']}" if where else str(error["msg"])


async def _park(run: Run, bucket: str, message_id: str, body: str, reason: str) -> None:
    key = f"{run.settings.output_prefix}{ERRORS_DIR}_queue/{_safe_name(message_id)}.json"
    record = {
        "error": "poisoned_message",
        "reason": reason,
        "message_id": message_id,
        "body": body,
        "failed_at": utc_now(),
    }
    await run.storage.put(
        bucket,
        key,
        json.dumps(record, ensure_ascii=False, indent=2).encode(),
        content_type="application/json",
    )
    log.warning("message_parked", message_id=message_id, reason=reason, output=key)


def _safe_name(message_id: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in message_id)[:200] or "message"
