"""Message Queue trigger: each message's body is a work message (embedding_pipeline/messages.py).

The envelope and the body are both parsed here. A poisoned message (not JSON, wrong schema, empty or
oversized text, unsafe key, a bucket it may not name) is parked under
{OUTPUT_PREFIX}_errors/_queue/{message_id}.json with its reason and raw body, and the batch goes on
(batch.py: if any message failed transiently, the invocation raises after the rest finished, so the
queue delivers the batch again; finished messages then skip cheaply). The queue's redrive policy
(maxReceiveCount, then the dead-letter queue) is the last line of defence.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.bucket_policy import WorkRefused, require_default_bucket
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.messages import WORK_MESSAGE
from embedding_pipeline.pipeline.parked_messages import park_message
from embedding_pipeline.runtime import Runtime
from handlers.batch import Accepted, process_batch, summary
from handlers.events import QueueMessage
from handlers.messages import perform
from handlers.validation import validation_message


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = event.get("messages", [])
    async with runtime.invocation(context, "queue") as invocation:
        # Raised, not parked: there is nowhere to park, and the queue's DLQ keeps the messages.
        require_default_bucket(invocation.settings, "the queue trigger")

        async def accept(number: int, raw: Any) -> Accepted | None:
            return await _accept(invocation, number, raw)

        batch = await process_batch(invocation, messages, accept)
        # A deferred reference is back in the queue: it reports when it is done.
        swept = [
            (item.bucket, item.sweep, result)
            for item, result in batch.done
            if item.sweep is not None and item.bucket is not None and result.outcome != "deferred"
        ]
        if swept:
            from embedding_pipeline.pipeline.reconcile.results import report_to_sweeps  # noqa: PLC0415

            await report_to_sweeps(invocation, swept)
        return {"documents": [summary(result) for _, result in batch.done], "parked": batch.set_aside}


async def _accept(invocation: Invocation, number: int, raw: Any) -> Accepted | None:
    """The work a message asks for, or None once a message that can never succeed is parked."""
    try:
        envelope = QueueMessage.model_validate(raw)
    except ValidationError as exc:
        await park_message(
            invocation, f"message-{number}", json.dumps(raw, default=str)[:4096], validation_message(exc)
        )
        return None
    message_id = envelope.details.message.message_id or f"message-{number}"
    body = envelope.details.message.body
    try:
        return perform(invocation, WORK_MESSAGE.validate_json(body))
    except ValidationError as exc:
        reason = validation_message(exc, json_body=True, prefer_given=True, tagged=True)
    except WorkRefused as exc:
        reason = exc.reason
    await park_message(invocation, message_id, body, reason)
    return None
