"""Yandex Cloud Function entry point: `index.handler`.

Settings, logging, HTTP pools and the rate limiter are built once per instance, at import; each
invocation is routed by its event's kind (see handlers/). One event loop lives as long as the
instance, so the pools' connections survive between warm invocations.
"""

from __future__ import annotations

import asyncio
from typing import Any

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.logs import configure_logging, get_logger
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings
from handlers import dispatch

try:
    settings = load_settings()
except ConfigurationError as exc:
    configure_logging()
    get_logger().critical("configuration_invalid", reason=str(exc))
    raise
configure_logging(settings.log_level)
runtime = Runtime(settings)
_loop = asyncio.Runner()


def handler(event: Any, context: Any) -> dict[str, Any]:
    return _loop.run(dispatch(runtime, event, context))
