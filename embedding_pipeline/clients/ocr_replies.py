"""What Yandex Vision OCR answers, read: a page's text, an operation's state, an error's message.

The REST API answers in camelCase (`textAnnotation`, `fullText`), while some of Yandex's examples
show the gRPC gateway's snake_case (`text_annotation`, `full_text`): both are read. An asynchronous
recognition's result is one JSON object per page, one per line, each `{"result": {..., "page": "0"}}`
with the page counted from 0 within the PDF that was sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MARKDOWN_MODELS = frozenset({"markdown", "math-markdown"})


class MalformedReply(ValueError):
    """An answer that is not what the API documents: retried like a 5xx."""


@dataclass(frozen=True, slots=True)
class PageText:
    page: int  # 0-based within the request's content
    text: str


def _field(mapping: dict[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def page_text(result: Any, model: str) -> PageText:
    """One page's text from a `{"result": {...}}` object (or the result itself): the markdown when
    the model writes it (tables and headings kept), else the full text."""
    if isinstance(result, dict) and "result" in result:
        result = result["result"]
    if not isinstance(result, dict):
        raise MalformedReply("an OCR result that is not an object")
    annotation = _field(result, "textAnnotation", "text_annotation") or {}
    if not isinstance(annotation, dict):
        raise MalformedReply("textAnnotation is not an object")
    text = ""
    if model in MARKDOWN_MODELS:
        text = annotation.get("markdown") or ""
    if not text:
        text = _field(annotation, "fullText", "full_text") or ""
    if not isinstance(text, str):
        raise MalformedReply("fullText is not a string")
    try:
        page = int(result.get("page") or 0)
    except (TypeError, ValueError):
        raise MalformedReply(f"page number {result.get('page')!r}") from None
    return PageText(page, text)


def result_pages(body: bytes, model: str) -> list[PageText]:
    """The pages of an asynchronous recognition's result (JSON Lines; a JSON array is read too)."""
    stripped = body.strip()
    if not stripped:
        raise MalformedReply("an empty recognition result")
    try:
        if stripped.startswith(b"["):
            items = json.loads(stripped)
        else:
            items = [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedReply(f"recognition result is not JSON ({exc})") from None
    return [page_text(item, model) for item in items]


@dataclass(frozen=True, slots=True)
class OperationState:
    done: bool
    error: str | None = None  # the operation failed: its message
    error_code: int | None = None  # google.rpc.Code: 3 INVALID_ARGUMENT is the document's fault


def operation_state(payload: Any) -> OperationState:
    if not isinstance(payload, dict) or not isinstance(payload.get("done", False), bool):
        raise MalformedReply("an operation that is not an object with a boolean `done`")
    error = payload.get("error")
    if payload.get("done") and isinstance(error, dict):
        code = error.get("code")
        return OperationState(
            True, str(error.get("message") or "failed"), code if isinstance(code, int) else None
        )
    return OperationState(bool(payload.get("done")))


def operation_id(payload: Any) -> str:
    value = payload.get("id") if isinstance(payload, dict) else None
    if not isinstance(value, str) or not value or len(value) > 200:
        raise MalformedReply("an operation without an id")
    return value


def error_message(body: bytes) -> str:
    """The `message` of an error answer (`{"code": 3, "message": ...}`), else its first 200 bytes."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace")
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])[:500]
    return body[:200].decode("utf-8", "replace")
