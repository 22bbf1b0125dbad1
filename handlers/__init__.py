"""Trigger adapters: one module per event kind, chosen from a table by the event's shape.

Each adapter parses its raw event into a model, calls the core, and shapes the reply. An adapter
is imported when its first event arrives: a cold start pays only for the kind it serves.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog

from embedding_pipeline.logs import get_logger
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import Settings
from handlers.events import QUEUE_EVENT_TYPE, STORAGE_EVENT_PREFIX, TIMER_EVENT_TYPE, event_type_of

log = get_logger()

Handler = Callable[[Runtime, dict[str, Any], Any], Awaitable[dict[str, Any]]]

ADAPTERS = {
    "storage": "handlers.storage",
    "queue": "handlers.queue",
    "timer": "handlers.timer",
    "http": "handlers.http",
}


def adapter_for(kind: str) -> Handler | None:
    module = ADAPTERS.get(kind)
    return None if module is None else cast(Handler, importlib.import_module(module).handle)


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
    # stream_name: Cloud Logging files the invocation's lines under its trigger kind (logs.py).
    structlog.contextvars.bind_contextvars(request_id=getattr(context, "request_id", None), stream_name=kind)
    if kind == "http":
        warn_if_open(runtime.settings)
    handler = adapter_for(kind)
    if handler is None:
        keys = sorted(str(key) for key in event)[:20] if isinstance(event, dict) else [type(event).__name__]
        # Answered, not raised: raising would make a trigger deliver the same unknown event forever.
        log.error("event_unrecognised", top_level_keys=keys)
        return {"error": "unrecognised event", "top_level_keys": keys}
    return await handler(runtime, event, context)


_warned_open: list[bool] = []  # once per instance: the first HTTP event's dispatch sets it


def warn_if_open(settings: Settings) -> None:
    """Without keys, every HTTP caller is trusted: the function must stay private (IAM-invoked).

    Said once per instance, at its first HTTP event: the events that can reach an open door. A
    storage, queue or timer invocation (`embedpipe invoke` of one, every trigger's cold start) has
    no HTTP caller to warn about, and a warning on each of them would teach operators to ignore it.
    """
    if not settings.api_keys and not _warned_open:
        _warned_open.append(True)
        log.warning(
            "http_api_keys_unset",
            reason="HTTP_API_KEYS is empty: every HTTP caller is trusted; keep the function private",
        )
