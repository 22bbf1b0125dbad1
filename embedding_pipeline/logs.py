"""Structured logging in Cloud Logging's shape: one JSON line per event on stdout.

Cloud Logging turns a single-line JSON object into a structured entry when it has `msg`, and reads
`level` from TRACE/DEBUG/INFO/WARN/ERROR/FATAL (not WARNING/CRITICAL). Every line passes through a
redaction step: values of secret-looking fields are masked, and every string of the line (a
traceback, an exception, any object rendered as text, included) goes through `redact.redact`: DSN
and URL passwords, the secrets registered at run time (IAM tokens, API keys, S3 and database
passwords) and token-shaped strings are masked wherever they appear.
"""

from __future__ import annotations

import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import FilteringBoundLogger

from embedding_pipeline.redact import MASK, redact, register_secret
from embedding_pipeline.text_safety import printable

__all__ = ["MASK", "configure_logging", "get_logger", "redact_secrets", "register_secret"]

_CLOUD_LEVELS = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARN",
    "warn": "WARN",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "FATAL",
}
_LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40}
# Field names that hold secrets: `token`, `access_token`, `X-Api-Key`... but not `tokens` (a count).
_SECRET_FIELD = re.compile(
    r"(^|[_-])(token|secret|secret_key|password|authorization|api[_-]?key|credentials?)$", re.IGNORECASE
)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: MASK if _SECRET_FIELD.search(str(k)) else _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else would be rendered with str() after this step: rendered here, and redacted.
    return redact(str(value))


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event_dict.items()):
        if _SECRET_FIELD.search(key) and value is not None:
            event_dict[key] = MASK
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def _cloud_level(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["level"] = _CLOUD_LEVELS.get(method, "INFO")
    event_dict["msg"] = event_dict.pop("event", "")
    return event_dict


def _stringify_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # An `error` is logged by type and message only: tracebacks can carry request headers. A bug
    # (`exc_info=`) is logged with its traceback, which the redaction step below still scrubs.
    error = event_dict.get("error")
    if isinstance(error, BaseException):
        event_dict["error"] = f"{type(error).__name__}: {error}"
    return event_dict


_to_json = structlog.processors.JSONRenderer(ensure_ascii=False, default=str)


def _render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
    rendered = str(_to_json(logger, method, event_dict))
    # A lone surrogate would raise out of the log call; escaped, the line stays one JSON object.
    return printable(rendered)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog once per process; safe to call again (tests, local runs)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _stringify_exception,
            structlog.processors.format_exc_info,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            _cloud_level,
            redact_secrets,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVEL_NUMBERS.get(level, 20)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger() -> FilteringBoundLogger:
    logger: FilteringBoundLogger = structlog.get_logger()
    return logger
