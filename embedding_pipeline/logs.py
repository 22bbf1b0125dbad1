"""Structured logging in Cloud Logging's shape: one JSON line per event on stdout.

Cloud Logging turns a single-line JSON object into a structured entry when it has `msg`, and reads
`level` from TRACE/DEBUG/INFO/WARN/ERROR/FATAL (not WARNING/CRITICAL) and the entry's stream from
`stream_name` (1 to 63 characters): every line carries the trigger kind there (handlers/ binds it per
invocation; `unknown` outside one). A line over 64 KB would be split and read as plain text: a longer
line has its longest strings cut in the middle, each cut marked, until it fits in MAX_LINE_BYTES.

Every line passes through a redaction step (before any cut): values of secret-looking fields are
masked, and every string of the line (a traceback, an exception, any object rendered as text,
included) goes through `redact.redact`: DSN and URL passwords, the secrets registered at run time
(IAM tokens, API keys, S3 and database passwords) and token-shaped strings are masked wherever they
appear.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, MutableMapping
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
MAX_LINE_BYTES = 60_000  # Cloud Logging splits a line over 64 KB into plain-text pieces
_KEPT_CHARS = 200  # a cut string keeps at least this much, half of it from each end
_MOST_CUTS = 20  # strings cut before a line that still does not fit keeps only its short fields
_CONTEXT_FIELDS = ("msg", "level", "ts", "stream_name", "request_id")
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
    event_dict["stream_name"] = str(event_dict.get("stream_name") or "unknown")[:63]
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
    # A lone surrogate would raise out of the log call; escaped, the line stays one JSON object.
    rendered = printable(str(_to_json(logger, method, event_dict)))
    if len(rendered) <= MAX_LINE_BYTES // 4:  # no UTF-8 character takes more than 4 bytes
        return rendered
    size = len(rendered.encode())
    for _ in range(_MOST_CUTS):
        if size <= MAX_LINE_BYTES or not _cut_longest(event_dict, size - MAX_LINE_BYTES):
            break
        rendered = printable(str(_to_json(logger, method, event_dict)))
        size = len(rendered.encode())
    if size <= MAX_LINE_BYTES:
        return rendered
    # Not a few long strings but many fields: its short fields stay, or at least the line's own.
    note = f"{size} bytes: only its short fields are kept"
    short = {name: value for name, value in event_dict.items() if _short(value)} | {"line_cut": note}
    rendered = printable(str(_to_json(logger, method, short)))
    if len(rendered.encode()) <= MAX_LINE_BYTES:
        return rendered
    own = {name: str(event_dict[name])[:_KEPT_CHARS] for name in _CONTEXT_FIELDS if name in event_dict}
    own["line_cut"] = note
    return printable(str(_to_json(logger, method, own)))


def _cut_longest(event_dict: MutableMapping[str, Any], excess: int) -> bool:
    """Shorten the longest string of the line, anywhere in it, by about `excess` bytes as the line
    renders it, and mark the cut; False when no string is long enough to cut."""
    found = max(_strings(event_dict), key=lambda place: len(place[0][place[1]]), default=None)
    if found is None or len(found[0][found[1]]) <= _KEPT_CHARS:
        return False
    container, at = found
    value: str = container[at]
    # Bytes a character takes in the line (1 to 4 in UTF-8, 2 to 12 escaped): on average, here.
    per_char = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "backslashreplace")) / len(value)
    kept = max(_KEPT_CHARS, len(value) - int((excess + 64) / per_char) - 1)  # 64: room for the mark
    head, tail = value[: kept // 2], value[len(value) - (kept - kept // 2) :]
    container[at] = f"{head}…[{len(value) - kept} characters cut]…{tail}"
    return True


def _strings(value: Any) -> Iterator[tuple[Any, Any]]:
    """Where each string of a line lies: (its dict or list, its key or index)."""
    items = value.items() if isinstance(value, MutableMapping) else enumerate(value)
    for at, item in items:
        if isinstance(item, str):
            yield value, at
        elif isinstance(item, MutableMapping | list):
            yield from _strings(item)


def _short(value: Any) -> bool:
    return (isinstance(value, str) and len(value) <= _KEPT_CHARS) or (
        value is None or isinstance(value, bool | int | float)
    )


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
