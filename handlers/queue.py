"""Message Queue trigger: each message's body is a work message (embedding_pipeline/work_messages.py).

The envelope is parsed here; the body is the core's to read. A poisoned message (not JSON, wrong
schema, empty or oversized text, unsafe key, a bucket it may not name) is parked under
{OUTPUT_PREFIX}_errors/_queue/{message_id}.json with its reason and raw body, and the batch goes on.
A batch is all-or-nothing for the platform: if any message failed transiently, the invocation raises
after the rest finished, so the queue delivers the batch again; finished messages then skip cheaply.
The queue's redrive policy (maxReceiveCount, then the dead-letter queue) is the last line of defence.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.pipeline.work import Accepted, accept_message, park_message
from embedding_pipeline.runtime import Runtime
from handlers.batch import gather_results, is_full, summary
from handlers.events import QueueMessage
from handlers.validation import validation_message


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = event.get("messages", [])
    async with runtime.invocation(context, more_work_follows=is_full(messages)) as invocation:
        if invocation.settings.default_bucket is None:
            # Raised, not parked: there is nowhere to park, and the queue's DLQ keeps the messages.
            raise ConfigurationError("the queue trigger needs OUTPUT_BUCKET or SOURCE_BUCKET")
        accepted: list[Accepted] = []
        parked = 0
        for number, raw in enumerate(messages):
            try:
                message = QueueMessage.model_validate(raw)
            except ValidationError as exc:
                body = json.dumps(raw, default=str)[:4096]
                await park_message(invocation, f"message-{number}", body, validation_message(exc))
                parked += 1
                continue
            work = await accept_message(
                invocation,
                message.details.message.message_id or f"message-{number}",
                message.details.message.body,
            )
            if work is None:
                parked += 1
            else:
                accepted.append(work)
        results = await gather_results([item.work for item in accepted])
        swept = [
            (item.bucket, item.sweep, result)
            for item, result in zip(accepted, results, strict=True)
            if item.sweep is not None and item.bucket is not None
        ]
        if swept:
            from embedding_pipeline.pipeline.reconcile.results import report_to_sweeps  # noqa: PLC0415

            await report_to_sweeps(invocation, swept)
        return {"documents": [summary(result) for result in results], "parked": parked}
