"""A document's own metadata: what travels beside its text, into every record of its chunks.

Two sources, merged per document (the sidecar wins a key both name):

    x-amz-meta-*         Object Storage's user metadata of the object (HEAD/GET), names lower case,
                         RFC 2047 encoded-words decoded (clients/output_marks.user_metadata)
    KEY.metadata.json    a sidecar object beside the document: a flat JSON object of scalars

A chunk's own metadata (a JSON/JSONL record's fields, a CSV row's, a PDF page) is never overridden:
records merge `{**document, **chunk}` (outputs/records.py). A sidecar outside these limits parks its
document with the reason (`BadMetadata`): the sidecar is part of the document.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from embedding_pipeline.errors import BadMetadata

SIDECAR_MAX_BYTES = 64 * 1024
MAX_KEYS = 100
MAX_KEY_CHARS = 128
MAX_STRING_CHARS = 1000
# Names the function writes into the user metadata of its own outputs (output_marks.py): never a
# document's metadata, from either source.
RESERVED_PREFIX = "embedpipe-"

Scalar = str | int | float | bool | None


def from_user_metadata(user_metadata: Mapping[str, str]) -> dict[str, Scalar]:
    """The object's user metadata as document metadata: the function's own marks left out."""
    return {
        name: value for name, value in sorted(user_metadata.items()) if not name.startswith(RESERVED_PREFIX)
    }


def parse_sidecar(data: bytes, name: str) -> dict[str, Scalar]:
    """The sidecar's object; BadMetadata naming the sidecar and what is wrong with it."""
    if len(data) > SIDECAR_MAX_BYTES:
        raise BadMetadata(f"{name}: {len(data)} bytes is over the sidecar's limit of {SIDECAR_MAX_BYTES}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadMetadata(f"{name}: not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise BadMetadata(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise BadMetadata(f"{name}: must be a JSON object, not {type(value).__name__}")
    if len(value) > MAX_KEYS:
        raise BadMetadata(f"{name}: {len(value)} keys is over the limit of {MAX_KEYS}")
    return {_checked_key(name, key): _checked_value(name, key, item) for key, item in value.items()}


def merged(user_metadata: Mapping[str, Scalar], sidecar: Mapping[str, Scalar] | None) -> dict[str, Any]:
    """A document's metadata: the object's user metadata, with the sidecar's over it."""
    return {**user_metadata, **(sidecar or {})}


def _no_constant(constant: str) -> Any:
    raise ValueError(f"{constant} is not a finite number")


def _checked_key(name: str, key: str) -> str:
    if not key:
        raise BadMetadata(f"{name}: a key is empty")
    if len(key) > MAX_KEY_CHARS:
        raise BadMetadata(f"{name}: key {key[:40]!r}... is over {MAX_KEY_CHARS} characters")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        raise BadMetadata(f"{name}: key {key!r} holds a control character")
    if _has_surrogate(key):
        raise BadMetadata(f"{name}: key {key!r} holds a lone surrogate (invalid Unicode)")
    if key.lower().startswith(RESERVED_PREFIX):
        raise BadMetadata(
            f"{name}: key {key!r}: names starting with {RESERVED_PREFIX!r} are the function's own"
        )
    return key


def _checked_value(name: str, key: str, value: Any) -> Scalar:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise BadMetadata(f"{name}: {key!r} is not a finite number")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise BadMetadata(f"{name}: {key!r} is {len(value)} characters, over {MAX_STRING_CHARS}")
        if "\x00" in value or _has_surrogate(value):
            raise BadMetadata(f"{name}: {key!r} holds NUL or a lone surrogate")
        return value
    kind = (
        "an object" if isinstance(value, dict) else "an array" if isinstance(value, list) else "not a scalar"
    )
    raise BadMetadata(f"{name}: {key!r} is {kind}: values must be strings, numbers, booleans or null")


def _has_surrogate(text: str) -> bool:
    return any(0xD800 <= ord(char) <= 0xDFFF for char in text)
