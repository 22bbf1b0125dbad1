"""Choose a parser by the key's extension and turn the bytes into a ParsedDocument."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.csvdoc import csv_rows
from embedding_pipeline.stages.documents.decoding import decode_text
from embedding_pipeline.stages.documents.epub import epub_chapters
from embedding_pipeline.stages.documents.htmltext import html_to_text
from embedding_pipeline.stages.documents.images import image_page
from embedding_pipeline.stages.documents.jsondoc import json_document
from embedding_pipeline.stages.documents.model import (
    Limits,
    Meter,
    ParsedDocument,
    has_text,
    whole,
)
from embedding_pipeline.stages.documents.office import docx_text, pdf_pages
from embedding_pipeline.stages.documents.opendocument import odf_text
from embedding_pipeline.stages.documents.records import jsonl
from embedding_pipeline.stages.documents.rtf import rtf_text
from embedding_pipeline.stages.documents.sheets import sheet_rows
from embedding_pipeline.stages.documents.slides import pptx_slides
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
SNIFF_BYTES = 8  # enough for every signature above: what `refusal` needs of a file

# Formats recognised by their extension and not parsed (yet): refused by name, whatever the bytes
# say, so the reason is the format and not "binary file". A format that gains a parser leaves this
# list by itself (`_UNSUPPORTED` subtracts the parsers).
_KNOWN_BINARY = {
    "doc": "Word 97-2003 document: convert it to .docx (soffice --headless --convert-to docx)",
    "xls": "Excel 97-2003 workbook",
    "xlsb": "Excel binary workbook",
    "ppt": "PowerPoint 97-2003 presentation: convert it to .pptx (soffice --headless --convert-to pptx)",
    "png": "PNG image",
    "jpg": "JPEG image",
    "jpeg": "JPEG image",
    "gif": "GIF image",
    "webp": "WebP image",
    "tif": "TIFF image: Vision OCR reads JPEG, PNG and PDF, convert it (magick scan.tif scan.pdf)",
    "tiff": "TIFF image: Vision OCR reads JPEG, PNG and PDF, convert it (magick scan.tif scan.pdf)",
    "bmp": "BMP image",
    "heic": "HEIC image",
    "zip": "ZIP archive",
    "gz": "gzip archive",
    "tgz": "gzip archive",
    "7z": "7z archive",
    "rar": "RAR archive",
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
    extension = extension_of(key)
    binary = _BINARY_PARSERS.get(extension)
    if binary is not None:
        return binary(data, limits)
    reason = refusal(key, data[:SNIFF_BYTES])
    if reason is not None:
        raise UnsupportedDocument(reason)
    text = decode_text(data)
    if extension == "csv" and csv_delimiter is not None:
        return _non_empty(csv_rows(text, text_field, limits, delimiter=csv_delimiter))
    parser = _TEXT_PARSERS.get(extension)
    document = parser(text, text_field, limits) if parser else whole(text, "text")
    return _non_empty(document)


def extension_of(key: str) -> str:
    """The extension of a key's last part, lowercased, without its dot ("" for none)."""
    return PurePosixPath(key).suffix[1:].lower()


def supported_formats() -> list[str]:
    """The extensions parsed by a parser of their own, and .txt: any other name is read as plain
    text (and refused if its bytes are not)."""
    return sorted({"txt", *_BINARY_PARSERS, *_TEXT_PARSERS})


def refusal(key: str, head: bytes) -> str | None:
    """Why a document named `key` whose bytes start with `head` (SNIFF_BYTES of them) is refused
    before any parsing, or None: a known format that has no parser, or binary bytes under a name
    that is read as text. `embedpipe embed` asks the same before uploading."""
    extension = extension_of(key)
    if extension in _BINARY_PARSERS:
        return None
    if extension in _KNOWN_BINARY:
        supported = ", ".join(f".{name}" for name in supported_formats())
        return (
            f"unsupported format .{extension} ({_KNOWN_BINARY[extension]}; "
            f"supported: {supported} and other plain text)"
        )
    magic = next((name for prefix, name in _MAGIC.items() if head.startswith(prefix)), None)
    if magic is not None:
        return f"binary file ({magic}) with a text extension"
    return None


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


# The parser registry: every supported format is here, and only here (supported_formats reads it).
_BinaryParser = Callable[[bytes, Limits], ParsedDocument]
_BINARY_PARSERS: dict[str, _BinaryParser] = {
    "pdf": lambda data, limits: _valid(pdf_pages(data, limits)),
    "docx": lambda data, limits: _non_empty(docx_text(data, limits)),
    "pptx": pptx_slides,
    "odp": lambda data, limits: odf_text(data, limits, "odp"),
    "odt": lambda data, limits: odf_text(data, limits, "odt"),
    "epub": epub_chapters,
    "rtf": lambda data, limits: _non_empty(rtf_text(data, limits)),
    "xlsx": lambda data, limits: sheet_rows(data, limits, "xlsx"),
    "xlsm": lambda data, limits: sheet_rows(data, limits, "xlsm"),
    "ods": lambda data, limits: sheet_rows(data, limits, "ods"),
    # Read by Vision OCR (pipeline/ocr.py): parsing only checks what it would refuse.
    "png": lambda data, limits: image_page(data, limits, "png"),
    "jpg": lambda data, limits: image_page(data, limits, "jpeg"),
    "jpeg": lambda data, limits: image_page(data, limits, "jpeg"),
}
_TextParser = Callable[[str, str, Limits], ParsedDocument]
_TEXT_PARSERS: dict[str, _TextParser] = {
    "csv": lambda text, field, limits: csv_rows(text, field, limits, delimiter=None),
    "md": lambda text, _field, _limits: whole(text, "markdown"),
    "markdown": lambda text, _field, _limits: whole(text, "markdown"),
    "html": lambda text, _field, limits: html_to_text(text, limits),
    "htm": lambda text, _field, limits: html_to_text(text, limits),
    "json": json_document,
    "jsonl": jsonl,
    "ndjson": jsonl,
    "tsv": lambda text, field, limits: csv_rows(text, field, limits, delimiter="\t"),
}
