"""Trigger adapters: one module per event kind, chosen from a table by the event's shape.

Each adapter parses its raw event into a model, calls the core, and shapes the reply.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline import Run
from embedding_pipeline.runtime import Runtime
from handlers import storage
from handlers.events import STORAGE_EVENT_PREFIX, event_type_of

log = get_logger()

Handler = Callable[[Run, dict[str, Any]], Awaitable[dict[str, Any]]]

HANDLERS: dict[str, Handler] = {
    "storage": storage.handle,
}


def event_kind(event: Any) -> str:
    event_type = event_type_of(event)
    if event_type is not None and event_type.startswith(STORAGE_EVENT_PREFIX):
        return "storage"
    return "unknown"


async def dispatch(runtime: Runtime, event: Any, context: Any) -> dict[str, Any]:
    kind = event_kind(event)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=getattr(context, "request_id", None), trigger=kind)
    handler = HANDLERS.get(kind)
    if handler is None:
        keys = sorted(event)[:20] if isinstance(event, dict) else [type(event).__name__]
        # Answered, not raised: raising would make a trigger deliver the same unknown event forever.
        log.error("event_unrecognised", top_level_keys=keys)
        return {"error": "unrecognised event", "top_level_keys": keys}
    started = time.monotonic()
    run = await runtime.open_run(context)
    try:
        return await handler(run, event)
    finally:
        usage, totals = run.usage, run.totals
        log.info(
            "invocation_done",
            documents=totals.documents,
            chunks=totals.chunks,
            reused_chunks=totals.reused,
            api_requests=usage.requests,
            tokens=usage.tokens,
            throttled=usage.throttled,
            retries=usage.retries,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
