"""Choose a parser by the key's extension and turn the bytes into a ParsedDocument."""

from __future__ import annotations

from collections.abc import Callable

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.csvdoc import csv_rows
from embedding_pipeline.stages.documents.decoding import decode_text
from embedding_pipeline.stages.documents.htmltext import html_to_text
from embedding_pipeline.stages.documents.jsondoc import json_document
from embedding_pipeline.stages.documents.model import (
    Limits,
    Meter,
    ParsedDocument,
    has_text,
    whole,
)
from embedding_pipeline.stages.documents.office import docx_text, pdf_pages
from embedding_pipeline.stages.documents.records import jsonl
from embedding_pipeline.text_safety import lone_surrogate_at

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


def parse_document(
    data: bytes,
    key: str,
    *,
    text_field: str = "text",
    limits: Limits = Limits(),  # noqa: B008 (Limits is frozen: one shared default is safe)
    csv_delimiter: str | None = None,
) -> ParsedDocument:
    """The text of `data` by the extension of `key`, in sections; a .csv's columns split by
    `csv_delimiter`, else by the delimiter sniffed from its first lines (csvdoc.py).

    Every failure is one of the product's permanent errors with its reason (UnsupportedDocument,
    DocumentTooLarge, EmptyDocument), or OutOfTime once `limits.deadline` has passed; a document with
    more sections (records, rows, pages with text) than `limits.max_chunks` stops at the first one over.
    """
    Meter(limits, "parsing")  # a deadline already past: stop before any work
    name = key.rsplit("/", 1)[-1]
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension == "pdf":
        return _valid(pdf_pages(data, limits))
    if extension == "docx":
        return _non_empty(docx_text(data, limits))
    magic = next((name for prefix, name in _MAGIC.items() if data.startswith(prefix)), None)
    if magic is not None:
        raise UnsupportedDocument(f"binary file ({magic}) with a text extension")
    text = decode_text(data)
    if extension == "csv":
        return _non_empty(csv_rows(text, text_field, limits, delimiter=csv_delimiter))
    parser = _TEXT_PARSERS.get(extension)
    document = parser(text, text_field, limits) if parser else whole(text, "text")
    return _non_empty(document)


def _non_empty(document: ParsedDocument) -> ParsedDocument:
    if not has_text(document.text):
        raise EmptyDocument("the document has no text")
    return document


def _valid(document: ParsedDocument) -> ParsedDocument:
    """Refuse PDF text holding half of a UTF-16 pair (from a crafted ToUnicode map): it cannot be
    encoded as UTF-8, so it could be neither hashed nor embedded nor written. Other text cannot hold
    one, or is checked where it is made: strict decoders refuse them, expat refuses them in DOCX,
    html.unescape replaces them, JSON records are checked one by one, and so is text in a detected
    encoding (UTF-7 can say "\\ud800")."""
    position = lone_surrogate_at(document.text)
    if position is None:
        return document
    section = next((s for s in document.sections if s.start <= position < s.end), None)
    metadata = section.metadata if section is not None else {}
    labels = [f"{name} {value}" for name, value in metadata.items() if name in ("page", "record", "row")]
    where = labels[0] if labels else f"character {position}"
    raise UnsupportedDocument(f"{where}: text holds a lone surrogate (invalid Unicode)")


_TextParser = Callable[[str, str, Limits], ParsedDocument]
_TEXT_PARSERS: dict[str, _TextParser] = {
    "md": lambda text, _field, _limits: whole(text, "markdown"),
    "markdown": lambda text, _field, _limits: whole(text, "markdown"),
    "html": lambda text, _field, limits: html_to_text(text, limits),
    "htm": lambda text, _field, limits: html_to_text(text, limits),
    "json": json_document,
    "jsonl": jsonl,
    "ndjson": jsonl,
    "tsv": lambda text, field, limits: csv_rows(text, field, limits, delimiter="\t"),
}
