"""JSON documents: an array of records, or an object that holds one (under records/data/items) or is one.

The top level is walked and the records decoded one at a time (by json's own decoder), each bounded
before it is built: decoded at once, 30 MB of tiny records is two million dicts and gigabytes, and the
chunk-count guard could only count them afterwards. The records and messages are json.loads's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator
from typing import Any

from embedding_pipeline.errors import DocumentTooLarge, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Limits, ParsedDocument
from embedding_pipeline.stages.documents.records import (
    MAX_JSON_VALUES,
    RecordSections,
    decode_json,
    json_value_bound,
)

_RECORD_LISTS = ("records", "data", "items")
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# A string (skipped whole), a bracket, or a quote that opens a string which never closes.
_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]|"', re.DOTALL)
_DECODER = json.JSONDecoder()


def json_document(text: str, text_field: str, limits: Limits) -> ParsedDocument:
    records = RecordSections("json", text_field, limits)
    for number, item in enumerate(_walk(text, text_field, records.step)):
        records.add(item, number, f"record {number}")
    return records.document(f"no record has text in {text_field!r}")


def _records_of(value: Any, text_field: str) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if text_field in value:
            return [value]
        nested = next((value[name] for name in _RECORD_LISTS if isinstance(value.get(name), list)), None)
        if nested is not None:
            return nested  # type: ignore[no-any-return]
        raise UnsupportedDocument(
            f"JSON object has no string field {text_field!r} and no list under {'/'.join(_RECORD_LISTS)}"
        )
    raise UnsupportedDocument(f"JSON must be an object or an array of objects with {text_field!r}")


def _walk(text: str, text_field: str, step: Callable[[], None]) -> Iterator[Any]:
    """The document's records, decoded one at a time."""
    start = _skip(text, 0)
    if text.startswith("[", start):
        end = yield from _elements(text, start, step)
        _expect_end(text, end)
        return
    if not text.startswith("{", start):
        yield from _records_of(decode_json(text), text_field)  # a scalar: an error, with json's message
        return
    fields, arrays, end = _object_fields(text, start, step)
    _expect_end(text, end)
    if text_field in fields or text_field in arrays:
        yield fields | {name: [] for name in arrays}  # the object is the record; lists are no metadata
        return
    for name in _RECORD_LISTS:
        if name in arrays:
            yield from _elements(text, arrays[name], step)
            return
        if isinstance(fields.get(name), list):
            yield from fields[name]
            return
    yield from _records_of(fields, text_field)  # no record list: the error says so


def _elements(text: str, start: int, step: Callable[[], None]) -> Generator[Any, None, int]:
    """Each element of the array at `start`, decoded; returns the position after the array."""
    position = _skip(text, start + 1)
    if text.startswith("]", position):
        return position + 1
    number = 0
    while True:
        value, position = _bounded_value(text, position, f"record {number}", step)
        number += 1
        yield value
        position = _skip(text, position)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif text.startswith("]", position):
            return position + 1
        else:
            raise _invalid(text, position, "Expecting ',' delimiter")


def _object_fields(
    text: str, start: int, step: Callable[[], None]
) -> tuple[dict[str, Any], dict[str, int], int]:
    """The object at `start`: its fields decoded, except record lists (their start positions instead)."""
    fields: dict[str, Any] = {}
    arrays: dict[str, int] = {}
    position = _skip(text, start + 1)
    if text.startswith("}", position):
        return fields, arrays, position + 1
    while True:
        if not text.startswith('"', position):
            raise _invalid(text, position, "Expecting property name enclosed in double quotes")
        try:
            key, position = _DECODER.raw_decode(text, position)  # a string: it starts with a quote
        except json.JSONDecodeError as exc:
            raise _invalid(text, exc.pos, exc.msg) from None
        position = _skip(text, position)
        if not text.startswith(":", position):
            raise _invalid(text, position, "Expecting ':' delimiter")
        position = _skip(text, position + 1)
        fields.pop(key, None)  # a repeated name keeps its last value, as json.loads does
        arrays.pop(key, None)
        if key in _RECORD_LISTS and text.startswith("[", position):
            arrays[key] = position
            position = _container_end(text, position, step, None)  # bounded record by record, later
        else:
            fields[key], position = _bounded_value(text, position, f"the value of {key!r}", step)
        position = _skip(text, position)
        if text.startswith(",", position):
            position = _skip(text, position + 1)
        elif text.startswith("}", position):
            return fields, arrays, position + 1
        else:
            raise _invalid(text, position, "Expecting ',' delimiter")


def _bounded_value(text: str, position: int, what: str, step: Callable[[], None]) -> tuple[Any, int]:
    """The value at `position` and the position after it; DocumentTooLarge before building a value
    of more than MAX_JSON_VALUES values."""
    if text.startswith(("[", "{"), position):
        end = _container_end(text, position, step, what)
        if json_value_bound(text, position, end) > MAX_JSON_VALUES:
            raise DocumentTooLarge(f"{what} holds more than {MAX_JSON_VALUES} JSON values")
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise _invalid(text, exc.pos, exc.msg) from None
    except RecursionError:
        raise UnsupportedDocument(f"JSON {what} is nested too deeply (RecursionError)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits, say
        raise UnsupportedDocument(f"invalid JSON in {what}: {exc}") from None


def _container_end(text: str, start: int, step: Callable[[], None], what: str | None) -> int:
    """Where the array or object at `start` ends, found by matching brackets outside strings, without
    building anything (whether it is valid JSON is left to the decoder). DocumentTooLarge as soon as
    `what` surely holds more than MAX_JSON_VALUES values."""
    # marks = strings + 2 × containers. Keys are at most as many as values, so strings / 2 + containers
    # is at most 1.5 × values: marks over 3 × MAX_JSON_VALUES means more values than that.
    depth = marks = 0
    for count, token in enumerate(_TOKEN.finditer(text, start)):
        if not count % 4096:
            step()
            if what is not None and marks > 3 * MAX_JSON_VALUES:
                raise DocumentTooLarge(f"{what} holds more than {MAX_JSON_VALUES} JSON values")
        first = text[token.start()]
        if first == '"':
            if token.end() - token.start() == 1:
                raise _invalid(text, token.start(), "Unterminated string")
            marks += 1
        elif first in "[{":
            depth += 1
            marks += 2
        else:
            depth -= 1
            if not depth:
                return token.end()
    if json_value_bound(text, start) <= MAX_JSON_VALUES:  # small enough for the decoder to say where
        try:
            _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            raise _invalid(text, exc.pos, exc.msg) from None
        except (RecursionError, ValueError):
            pass
    raise _invalid(text, start, "an array or object that never ends")


def _skip(text: str, position: int) -> int:
    found = _WHITESPACE.match(text, position)
    return found.end() if found is not None else position


def _expect_end(text: str, end: int) -> None:
    if _skip(text, end) != len(text):
        raise _invalid(text, _skip(text, end), "Extra data")


def _invalid(text: str, position: int, message: str) -> UnsupportedDocument:
    return UnsupportedDocument(f"invalid JSON at line {text.count(chr(10), 0, position) + 1}: {message}")
