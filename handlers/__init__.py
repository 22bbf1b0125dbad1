"""Trigger adapters: one module per event kind, chosen from a table by the event's shape.

Each adapter parses its raw event into a model, calls the core, and shapes the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from embedding_pipeline.logs import get_logger
from embedding_pipeline.runtime import Runtime
from handlers import http, queue, storage, timer
from handlers.events import QUEUE_EVENT_TYPE, STORAGE_EVENT_PREFIX, TIMER_EVENT_TYPE, event_type_of

log = get_logger()

Handler = Callable[[Runtime, dict[str, Any], Any], Awaitable[dict[str, Any]]]

HANDLERS: dict[str, Handler] = {
    "storage": storage.handle,
    "queue": queue.handle,
    "timer": timer.handle,
    "http": http.handle,
}


def event_kind(event: Any) -> str:
    event_type = event_type_of(event)
    if event_type is not None:
        if event_type.startswith(STORAGE_EVENT_PREFIX):
            return "storage"
        if event_type == QUEUE_EVENT_TYPE:
            return "queue"
        if event_type == TIMER_EVENT_TYPE:
            return "timer"
    if isinstance(event, dict) and isinstance(event.get("httpMethod"), str):
        return "http"
    return "unknown"


async def dispatch(runtime: Runtime, event: Any, context: Any) -> dict[str, Any]:
    kind = event_kind(event)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=getattr(context, "request_id", None), trigger=kind)
    handler = HANDLERS.get(kind)
    if handler is None:
        keys = sorted(str(key) for key in event)[:20] if isinstance(event, dict) else [type(event).__name__]
        # Answered, not raised: raising would make a trigger deliver the same unknown event forever.
        log.error("event_unrecognised", top_level_keys=keys)
        return {"error": "unrecognised event", "top_level_keys": keys}
    return await handler(runtime, event, context)
