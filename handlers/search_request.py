"""The body of `POST /v1/search`, read strictly: what JSON or PostgreSQL cannot hold is the caller's
error (400, the field named), found before anything is paid for or sent to the index.

Refused, in `query`, `prefix` and every key and string of `filter`:
- `\\u0000`: PostgreSQL's text and jsonb hold no NUL;
- a lone surrogate (`"\\ud800"`): it has no UTF-8 form;
- in `filter`, a string over 1,000 characters (metadata values are short labels; the bound keeps a
  containment query cheap), and `NaN`, `Infinity`, `-Infinity` or a number too large for a double
  (`1e999`): JSON has no such numbers and jsonb holds none. Python's parser accepts them, so the
  body is parsed with `Request.json(finite=True)`, which leaves a `NotFinite` in their place.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from handlers.http_messages import NotFinite

FILTER_STRING_LIMIT = 1000  # characters, for a key or a string value of `filter`
FILTER_DEPTH_LIMIT = 32  # levels of objects and lists: the checks recurse once per level
PREFIX_LIMIT = 1024  # characters: an object key's limit in bytes is 1024


class SearchRequest(BaseModel):
    # Forbidden, not ignored: a misspelt "topk" or "filters" would silently widen the search.
    model_config = ConfigDict(extra="forbid")

    query: str
    top_k: Annotated[int, Field(strict=True, gt=0)] = 10
    prefix: Annotated[str, Field(max_length=PREFIX_LIMIT)] | None = None
    filter: dict[str, Any] | None = None  # every pair must be in a chunk's metadata (jsonb @>)

    @field_validator("query", mode="before")
    @classmethod
    def _query(cls, value: object) -> object:
        if not isinstance(value, str):
            raise _invalid("query must be a string")
        if not value.strip():
            raise _invalid("query is empty")
        _check_text(value, "query")
        return value

    @field_validator("prefix", mode="before")
    @classmethod
    def _prefix(cls, value: object) -> object:
        if isinstance(value, str):
            _check_text(value, "prefix")
        return value

    @field_validator("filter", mode="before")
    @classmethod
    def _filter(cls, value: object) -> object:
        if isinstance(value, dict):
            _check_value(value, "filter", 1)
        return value


def _check_value(value: object, where: str, depth: int) -> None:
    """Every key and value of a filter, at any depth; the error names the first bad one's path."""
    if depth > FILTER_DEPTH_LIMIT:
        raise _invalid(f"filter: nested deeper than {FILTER_DEPTH_LIMIT} levels")
    if isinstance(value, NotFinite):
        raise _invalid(f"{where}: {value.literal} is not a finite number: JSON and the index hold none")
    if isinstance(value, str):
        _check_text(value, where)
        if len(value) > FILTER_STRING_LIMIT:
            raise _invalid(f"{where}: longer than {FILTER_STRING_LIMIT} characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where}: a key")
            if len(key) > FILTER_STRING_LIMIT:
                raise _invalid(f"{where}: a key is longer than {FILTER_STRING_LIMIT} characters")
            _check_value(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]", depth + 1)


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise _invalid(f"{where}: holds \\u0000, which PostgreSQL cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(f"{where}: not valid Unicode: it holds a lone surrogate such as \\ud800") from None


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_input", message)
