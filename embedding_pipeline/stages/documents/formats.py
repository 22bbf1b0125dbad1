"""Choose a parser by the key's extension and turn the bytes into a ParsedDocument."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.decoding import decode_text
from embedding_pipeline.stages.documents.htmltext import html_to_text
from embedding_pipeline.stages.documents.model import Limits, Metadata, ParsedDocument, join_sections, whole
from embedding_pipeline.stages.documents.office import docx_text, pdf_pages

_MAGIC = {
    b"\x89PNG": "PNG image",
    b"\xff\xd8\xff": "JPEG image",
    b"GIF8": "GIF image",
    b"\x1f\x8b": "gzip archive",
    b"\x7fELF": "executable",
    b"Rar!": "RAR archive",
    b"7z\xbc\xaf": "7z archive",
    b"PK\x03\x04": "ZIP archive",
    b"%PDF": "PDF",
}
_RECORD_LISTS = ("records", "data", "items")


def parse_document(
    data: bytes, key: str, *, text_field: str = "text", limits: Limits | None = None
) -> ParsedDocument:
    extension = key.rsplit("/", 1)[-1].rpartition(".")[2].lower() if "." in key.rsplit("/", 1)[-1] else ""
    if extension == "pdf":
        return join_sections(pdf_pages(data), "pdf")
    if extension == "docx":
        return _non_empty(whole(docx_text(data), "docx"))
    magic = next((name for prefix, name in _MAGIC.items() if data.startswith(prefix)), None)
    if magic is not None:
        raise UnsupportedDocument(f"binary file ({magic}) with a text extension")
    text = decode_text(data)
    parser = _TEXT_PARSERS.get(extension)
    document = parser(text, text_field) if parser else whole(text, "text")
    return _non_empty(document)


def _non_empty(document: ParsedDocument) -> ParsedDocument:
    if not document.text.strip():
        raise EmptyDocument("the document has no text")
    return document


def _records(items: list[Any], text_field: str, where: str) -> ParsedDocument:
    parts: list[tuple[str, Metadata]] = []
    for number, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(text_field), str):
            raise UnsupportedDocument(f"{where} {number} has no string field {text_field!r}")
        metadata: Metadata = {
            name: value
            for name, value in item.items()
            if name != text_field and (value is None or isinstance(value, str | int | float | bool))
        }
        metadata["record"] = number
        if item[text_field].strip():
            parts.append((item[text_field], metadata))
    if not parts:
        raise EmptyDocument(f"no record has text in {text_field!r}")
    return join_sections(parts, "json" if where == "record" else "jsonl")


def _json(text: str, text_field: str) -> ParsedDocument:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedDocument(f"invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if isinstance(value, dict):
        nested = next((value[name] for name in _RECORD_LISTS if isinstance(value.get(name), list)), None)
        value = nested if nested is not None and text_field not in value else [value]
    if not isinstance(value, list):
        raise UnsupportedDocument(f"JSON must be an object or an array of objects with {text_field!r}")
    return _records(value, text_field, "record")


def _jsonl(text: str, text_field: str) -> ParsedDocument:
    items = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UnsupportedDocument(f"invalid JSON on line {number}: {exc.msg}") from None
    return _records(items, text_field, "line")


def _csv(text: str, text_field: str, delimiter: str = ",") -> ParsedDocument:
    try:
        rows = list(csv.DictReader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise UnsupportedDocument(f"invalid CSV: {exc}") from None
    if not rows:
        raise EmptyDocument("CSV has no data rows")
    if text_field in rows[0]:
        parts: list[tuple[str, Metadata]] = []
        for number, row in enumerate(rows):
            body = row.get(text_field) or ""
            if body.strip():
                metadata: Metadata = {k: v for k, v in row.items() if k != text_field and isinstance(k, str)}
                metadata["row"] = number
                parts.append((body, metadata))
        if not parts:
            raise EmptyDocument(f"no row has text in column {text_field!r}")
        return join_sections(parts, "csv")
    blocks = [
        "\n".join(f"{name}: {value}" for name, value in row.items() if isinstance(name, str) and value)
        for row in rows
    ]
    return whole("\n\n".join(block for block in blocks if block), "csv")


_TEXT_PARSERS: dict[str, Callable[[str, str], ParsedDocument]] = {
    "md": lambda text, _field: whole(text, "markdown"),
    "markdown": lambda text, _field: whole(text, "markdown"),
    "html": lambda text, _field: whole(html_to_text(text), "html"),
    "htm": lambda text, _field: whole(html_to_text(text), "html"),
    "json": _json,
    "jsonl": _jsonl,
    "ndjson": _jsonl,
    "csv": _csv,
    "tsv": lambda text, field: _csv(text, field, delimiter="\t"),
}
