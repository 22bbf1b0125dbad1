"""Records into sections (`RecordSections`, for JSON, JSON Lines and CSV), and JSON Lines itself.

Each record with text becomes a section; its scalar fields become the section's metadata. Records
are read one at a time and dropped once kept, so what a document costs is its text and metadata, and
the chunk-count guard stops a file of a million tiny records at the first record over the cap.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.model import (
    Limits,
    Metadata,
    Meter,
    ParsedDocument,
    TextBuilder,
    has_text,
    refuse_lone_surrogates,
)

# What decoding one JSON value may build: about 64 bytes of Python objects per value at worst ("[]"
# or "{}" in three bytes of text), so half a million values cost at most ~32 MB at a time.
MAX_JSON_VALUES = 500_000
# Metadata is kept for every section until the document is written: ~100 bytes a field (the dict
# slot, the value, its share of the key) plus its text, as measured. 48 MiB is 50,000 records (the
# chunk cap) with eight short fields; the JSON it came from, larger still, is what the size cap admits.
_METADATA_BUDGET = 48 * 1024 * 1024
_FIELD_COST = 100


class RecordSections:
    """Records in, sections out: the text field, scalar metadata, the count guard and the budgets."""

    def __init__(self, document_format: str, text_field: str, limits: Limits) -> None:
        self._builder = TextBuilder(document_format, sectioned=True)
        self._meter = Meter(limits, "parsing")
        self._text_field = text_field
        self._keys: dict[str, str] = {}  # one string per field name, shared by every record
        self._metadata_cost = 0

    def step(self) -> None:
        self._meter.step()

    def add(self, item: Any, number: int, where: str, *, number_key: str = "record") -> None:
        """Record `number` (called `where` in messages); kept if its text is not blank."""
        self._meter.step()
        field = self._text_field
        if not isinstance(item, dict):
            raise UnsupportedDocument(f"{where} is not an object with a string field {field!r}")
        text = item.get(field)
        if not isinstance(text, str):
            raise UnsupportedDocument(f"{where} has no string field {field!r}")
        if not has_text(text):
            return
        self._meter.add("records" if number_key == "record" else "rows")
        refuse_lone_surrogates(text, f"{where}: text")
        self._builder.add(text, self._metadata(item, number, where, number_key))

    def _metadata(self, item: dict[Any, Any], number: int, where: str, number_key: str) -> Metadata:
        metadata: Metadata = {}
        cost = 0
        for name, given in item.items():
            if name == self._text_field or not isinstance(name, str):
                continue
            if not (given is None or isinstance(given, str | int | float | bool)):
                continue
            # JSON's NaN and Infinity are no JSON: kept as text, never written bare into a record.
            value = str(given) if isinstance(given, float) and not math.isfinite(given) else given
            if isinstance(value, str):
                refuse_lone_surrogates(value, f"{where}: field {name!r}")
                cost += len(value)
            key = self._keys.get(name)
            if key is None:
                refuse_lone_surrogates(name, f"{where}: a field name")
                key = self._keys[name] = name
                cost += len(name)
            metadata[key] = value
            cost += _FIELD_COST
        metadata[number_key] = number
        self._metadata_cost += cost
        if self._metadata_cost > _METADATA_BUDGET:
            raise DocumentTooLarge(
                f"the records' other fields take over {_METADATA_BUDGET // 2**20} MB as metadata (about "
                f"{_FIELD_COST} bytes a field and its text): too many fields besides {self._text_field!r}"
            )
        return metadata

    def document(self, nothing: str) -> ParsedDocument:
        if not self._builder.length:
            raise EmptyDocument(nothing)
        return self._builder.document()


def lines(text: str) -> Iterator[tuple[int, int, int]]:
    """(line number from 1, start, end) of each line, end excluding the newline."""
    start = 0
    for number in itertools.count(1):
        end = text.find("\n", start)
        if end < 0:
            yield number, start, len(text)
            return
        yield number, start, end
        start = end + 1


def json_value_bound(text: str, start: int = 0, end: int | None = None) -> int:
    """At least how many values decoding text[start:end] builds: separators and containers, counted
    at C speed (those inside strings too, so the bound is never under)."""
    stop = len(text) if end is None else end
    return sum(text.count(mark, start, stop) for mark in ",[{") + 1


def decode_json(text: str, where: str | None = None) -> Any:
    """json.loads with every way it fails mapped (`where`, "on line 5", else the error's own line);
    the caller has bounded the number of values it builds."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedDocument(f"invalid JSON {where or f'at line {exc.lineno}'}: {exc.msg}") from None
    except RecursionError:
        raise UnsupportedDocument(f"JSON{_space(where)} nested too deeply (RecursionError)") from None
    except ValueError as exc:  # an integer of more than 4,300 digits, say
        raise UnsupportedDocument(f"invalid JSON{_space(where)}: {exc}") from None


def _space(where: str | None) -> str:
    return f" {where}" if where else ""


def jsonl(text: str, text_field: str, limits: Limits) -> ParsedDocument:
    records = RecordSections("jsonl", text_field, limits)
    number = 0
    for line_number, start, end in lines(text):
        line = text[start:end]
        if not has_text(line):
            records.step()
            continue
        if json_value_bound(line) > MAX_JSON_VALUES:
            raise DocumentTooLarge(f"line {line_number} holds more than {MAX_JSON_VALUES} JSON values")
        item = decode_json(line, f"on line {line_number}")
        records.add(item, number, f"line {line_number}")
        number += 1
    return records.document(f"no record has text in {text_field!r}")
