"""Adversarial documents: inputs that once cost quadratic time, gigabytes of memory or an unmapped error.

Built here, in code, and only here: the benchmark (`bench/pathological.py`), the tests
(`tests/test_bounded_documents.py`, `tests/test_poison_documents.py`, `tests/test_parse_properties.py`)
and `tests/data/make_adversarial.py` (which writes them to files, for whoever wants the files) all take
them from this module, so no generated binary is committed.

- `TIME_SHAPES`: text whose chunking time must grow linearly with its size;
- `MEMORY_SHAPES`: documents as large as `MAX_SOURCE_BYTES` admits (or a small bomb that expands to
  that much) whose parsing and chunking must stay within the function's memory;
- `POISON`: small crafted documents each parser must refuse with the product's own error.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import ChunkingSettings, Limits

MB = 1_000_000
FULL_SIZE = 30 * MB  # under the default MAX_SOURCE_BYTES (32 MiB), as the figures were measured

Make = Callable[[int], bytes]  # a target size in bytes → the document


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    key: str  # the object key: its extension picks the parser
    make: Make
    size: int = FULL_SIZE  # what MEMORY_SHAPES give `make`: bytes, or pages for PDFs


def repeated(unit: str, size: int) -> bytes:
    """`unit` repeated to about `size` bytes of UTF-8, never cutting a character."""
    encoded = unit.encode()
    return encoded * max(1, size // len(encoded))


def numbered(template: str, size: int) -> bytes:
    """`template.format(n)` for n = 0, 1, ... until `size` bytes: items that differ, as real ones do."""
    out = io.BytesIO()
    number = 0
    while out.tell() < size:
        out.write(template.format(number).encode())
        number += 1
    return out.getvalue()


# --- Text shapes: chunking must take linear time ------------------------------------------------

TIME_SHAPES: tuple[Shape, ...] = (
    Shape("dots", "dots.txt", lambda size: repeated(".", size)),
    Shape("punctuation_mix", "mix.txt", lambda size: repeated("!?….?!..", size)),
    Shape("punctuation_and_closers", "closers.txt", lambda size: repeated('.!")»]', size)),
    Shape("sentence_ends_everywhere", "ends.txt", lambda size: repeated("a. ", size)),
    Shape("no_whitespace", "letters.txt", lambda size: repeated("abcdefghijklmnopqrstuvwxyz", size)),
    Shape("one_line", "line.txt", lambda size: repeated("lorem ipsum dolor sit amet ", size)),
    Shape("tiny_lines", "lines.txt", lambda size: repeated("a\n", size)),
    Shape("tiny_paragraphs", "paragraphs.md", lambda size: repeated("a\n\n", size)),
    Shape("heading_lines", "headings.md", lambda size: repeated("# a\nb\n", size)),
    Shape("blank_line_runs", "blanks.txt", lambda size: repeated("\n" + " " * 30 + "x", size)),
)


# --- Memory shapes: as large as the size cap admits -----------------------------------------------


def docx(body_xml: bytes | Callable[[io.BufferedIOBase], None]) -> bytes:
    """A .docx holding `body_xml` as word/document.xml (or what the callable writes there), deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        if isinstance(body_xml, bytes):
            archive.writestr("word/document.xml", body_xml)
        else:
            with archive.open("word/document.xml", "w") as stream:
                body_xml(stream)  # type: ignore[arg-type]
    return buffer.getvalue()


_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_DOCX_HEAD = f'<?xml version="1.0"?><w:document xmlns:w="{_W_NS}"><w:body>'.encode()
_DOCX_TAIL = b"</w:body></w:document>"


def docx_bomb(xml_size: int) -> bytes:
    """A small .docx whose body expands to `xml_size` bytes of XML: identical short paragraphs."""
    paragraph = b"<w:p><w:r><w:t>Lorem ipsum dolor sit amet.</w:t></w:r></w:p>"

    def write(stream: io.BufferedIOBase) -> None:
        stream.write(_DOCX_HEAD)
        block = paragraph * 10_000
        for _ in range(max(1, (xml_size - len(_DOCX_HEAD) - len(_DOCX_TAIL)) // len(block))):
            stream.write(block)
        stream.write(_DOCX_TAIL)

    return docx(write)


def docx_one_paragraph_of_runs(xml_size: int) -> bytes:
    """One paragraph of `xml_size` bytes: a million runs of one character each (no text between them)."""

    def write(stream: io.BufferedIOBase) -> None:
        stream.write(_DOCX_HEAD + b"<w:p>")
        block = "<w:r><w:t>я</w:t></w:r>".encode() * 10_000
        for _ in range(max(1, xml_size // len(block))):
            stream.write(block)
        stream.write(b"</w:p>" + _DOCX_TAIL)

    return docx(write)


def csv_wide_header(size: int) -> bytes:
    """A CSV without a text column whose long header names are repeated for every short value."""
    columns = 200
    header = ",".join(f"column_with_a_rather_long_descriptive_name_{n}" for n in range(columns))
    row = ",".join("1" for _ in range(columns))
    return header.encode() + b"\n" + repeated(row + "\n", size)


def json_nested_values(size: int) -> bytes:
    """One record whose other field is an array of empty arrays: tiny JSON, large Python objects."""
    return b'{"text": "a", "extra": [' + repeated("[],", size - 30) + b"[]]}"


MEMORY_SHAPES: tuple[Shape, ...] = (
    Shape("docx_bomb", "bomb.docx", docx_bomb, 49 * MB),
    Shape("docx_one_paragraph_of_runs", "runs.docx", docx_one_paragraph_of_runs, 49 * MB),
    Shape("md_short_paragraphs", "short.md", lambda size: numbered("Paragraph {}.\n\n", size)),
    Shape("md_tiny_paragraphs", "tiny.md", lambda size: repeated("a\n\n", size)),
    Shape("md_chunk_per_heading", "headings.md", lambda size: numbered("# H{}\n\nbody\n\n", size)),
    Shape("csv_tiny_rows", "rows.csv", lambda size: b"id,text\n" + numbered("{},a\n", size)),
    Shape("csv_rendered_rows", "wide.csv", csv_wide_header),
    Shape("jsonl_tiny_records", "records.jsonl", lambda size: numbered('{{"id":{},"text":"a"}}\n', size)),
    Shape(
        "json_tiny_records",
        "records.json",
        lambda size: b"[" + numbered('{{"id":{},"text":"a"}},', size) + b'{"text":"a"}]',
    ),
    Shape("json_nested_values", "nested.json", json_nested_values),
    Shape("html_tiny_blocks", "blocks.html", lambda size: numbered("<p>{}</p>", size)),
    Shape("txt_single_line", "line.txt", lambda size: repeated("lorem ipsum dolor sit amet ", size), 5 * MB),
    Shape("txt_crlf_with_one_emoji", "emoji.txt", lambda size: "😀".encode() + repeated("ab cd.\r\n", size)),
    Shape(
        "pdf_many_pages",
        "pages.pdf",
        lambda pages: pdf_pages([text_page(f"p{n}") for n in range(pages)]),
        9_900,
    ),
    Shape("pdf_pages_at_the_operator_cap", "drawings.pdf", lambda pages: pdf_drawings(pages), 12),  # noqa: PLW0108
)


# --- PDFs -----------------------------------------------------------------------------------------


def pdf(objects: list[bytes], *, root: int = 1, xref: bool = True, trailer_extra: bytes = b"") -> bytes:
    """A PDF of numbered objects (1-based, in order) with a classic xref table and a trailer."""
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    start = out.tell()
    if xref:
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root %d 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, root, trailer_extra, start)
    )
    return out.getvalue()


def stream(content: bytes, *, flate: bool = False, extra: bytes = b"") -> bytes:
    data = zlib.compress(content, 9) if flate else content
    filters = b"/Filter /FlateDecode " if flate else b""
    return b"<< /Length %d %s%s>>\nstream\n%s\nendstream" % (len(data), filters, extra, data)


_FONT = b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>"


def pdf_pages(contents: list[bytes], *, flate: bool = False) -> bytes:
    """A PDF with one page per content stream (objects: catalog, pages, then stream and page pairs)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for content in contents:
        objects.append(stream(content, flate=flate))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R %s >>"
            % (len(objects), _FONT)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    return pdf(objects)


def text_page(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode("latin-1")


def pdf_drawings(pages: int) -> bytes:
    """Pages that each inflate from 3 KB to 900 KB of drawing operators (450,000 operands and
    operators, just under the parser's cap of 500,000) and one line of text."""
    content = b"BT /F1 12 Tf 72 720 Td (drawing) Tj ET\n" + b"0 0 m 1 1 l S\n" * 64_000
    return pdf_pages([content] * pages, flate=True)


# --- Poison: each must be refused with the product's own error -----------------------------------


def deeply_nested_json(depth: int = 100_000) -> bytes:
    return b'{"text": "a", "deep": ' + b"[" * depth + b"]" * depth + b"}"


def pdf_huge_length() -> bytes:
    """A content stream declaring a /Length far beyond any real one."""
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R %s >>" % _FONT
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            b"<< /Length 99999999999 >>\nstream\nBT (x) Tj ET\nendstream",
        ]
    )


def pdf_flate_bomb(inflated: int = 64 * MB) -> bytes:
    """A page whose content stream inflates to `inflated` bytes from a few hundred kilobytes."""
    compressor = zlib.compressobj(9)
    chunk = b" " * MB
    data = b"".join(compressor.compress(chunk) for _ in range(inflated // MB)) + compressor.flush()
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R %s >>" % _FONT
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data),
        ]
    )


def pdf_nested_arrays(depth: int = 50_000) -> bytes:
    """A page dictionary holding an array nested `depth` deep."""
    page = b"<< /Type /Page /Parent 2 0 R /Deep %s%s /Contents 4 0 R >>" % (b"[" * depth, b"]" * depth)
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            stream(text_page("nested")),
        ]
    )


def pdf_nested_pages(depth: int = 5_000) -> bytes:
    """A page tree `depth` levels deep, each /Pages node holding the next."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        number = len(objects) + 1
        parent = b"/Parent %d 0 R " % (number - 1) if level else b""
        objects.append(b"<< /Type /Pages %s/Kids [%d 0 R] /Count 1 >>" % (parent, number + 1))
    objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] >>" % len(objects))
    return pdf(objects)


def pdf_xref_stream_short_widths() -> bytes:
    """An xref stream whose /W names two field widths instead of three (pypdf asserts three)."""
    head = b"%PDF-1.5\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    body = b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    entries = b"\x01\x00\x09"
    xref = b"3 0 obj\n<< /Type /XRef /Size 4 /W [1 2] /Root 1 0 R /Length %d >>\n" % len(entries)
    xref += b"stream\n%s\nendstream\nendobj\n" % entries
    return head + body + xref + b"startxref\n%d\n%%%%EOF\n" % (len(head) + len(body))


def pdf_broken_xref() -> bytes:
    """An xref table whose offsets point nowhere and a startxref past the end of the file (pypdf
    recovers from this one: the text is read)."""
    head, _, _ = pdf_pages([text_page("broken xref")]).partition(b"xref\n")
    table = b"xref\n0 2\n0000000000 65535 f \n9999999999 00000 n \n"
    return head + table + b"trailer\n<< /Size 2 >>\nstartxref\n999999\n%%EOF\n"


def pdf_nested_content_arrays(depth: int = 5_000) -> bytes:
    """A content stream whose text operand is an array nested `depth` deep (pypdf recurses into it)."""
    return pdf_pages([b"BT /F1 12 Tf " + b"[" * depth + b"(x)" + b"]" * depth + b" TJ ET"])


def pdf_inline_image_with_operands() -> bytes:
    """A content stream whose inline image operator (BI) follows stray operands."""
    return pdf_pages([b"BT /F1 12 Tf (x) Tj ET 1 2 BI /W 1 /H 1 /BPC 8 /CS /G ID \x00 EI"])


def pdf_self_referencing_pages() -> bytes:
    """A page tree whose /Pages node lists itself as its own kid."""
    return pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"])


def pdf_lone_surrogate() -> bytes:
    """A font whose ToUnicode map turns "A" into U+D800, half of a UTF-16 pair, which pypdf returns."""
    cmap = (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        b"2 beginbfchar <41> <D800> <42> <0042> endbfchar\n"
        b"endcmap CMapName currentdict /CMap defineresource pop end end"
    )
    return pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            stream(b"BT /F1 12 Tf 72 720 Td (ABAB) Tj ET"),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
            stream(cmap),
        ]
    )


POISON_PDFS: dict[str, Callable[[], bytes]] = {
    "huge_length": pdf_huge_length,
    "flate_bomb": pdf_flate_bomb,
    "nested_arrays": pdf_nested_arrays,
    "nested_content_arrays": pdf_nested_content_arrays,
    "nested_pages": pdf_nested_pages,
    "xref_stream_short_widths": pdf_xref_stream_short_widths,
    "broken_xref": pdf_broken_xref,
    "inline_image_with_operands": pdf_inline_image_with_operands,
    "self_referencing_pages": pdf_self_referencing_pages,
}


def _docx_body(paragraphs: str) -> bytes:
    return _DOCX_HEAD + paragraphs.encode() + _DOCX_TAIL


def _patched_entry(data: bytes, name: bytes, field_at: int, value: bytes) -> bytes:
    """`data` (a ZIP) with bytes at `field_at` of `name`'s local and central headers replaced."""
    out = bytearray(data)
    for signature, name_at, shift in ((b"PK\x03\x04", 30, 0), (b"PK\x01\x02", 46, 2)):
        position = out.find(signature)
        while position >= 0:
            if out[position + name_at : position + name_at + len(name)] == name:
                out[position + field_at + shift : position + field_at + shift + len(value)] = value
            position = out.find(signature, position + 1)
    return bytes(out)


def docx_with_entities() -> bytes:
    """A DTD of nested entities ("billion laughs"): a few hundred bytes that expand to gigabytes."""
    entities = '<!ENTITY a "haha">' + "".join(
        f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(8)
    )
    body = "<w:p><w:r><w:t>&i;</w:t></w:r></w:p>"
    return docx(
        b'<?xml version="1.0"?><!DOCTYPE w:document [' + entities.encode() + b"]>" + _docx_body(body)[21:]
    )


POISON_DOCX: dict[str, Callable[[], bytes]] = {
    "entities": docx_with_entities,
    # compression method 99 (AES): zipfile cannot read it
    "unknown_compression": lambda: _patched_entry(
        docx(_docx_body("<w:p/>")), b"word/document.xml", 8, b"\x63\x00"
    ),
    # the "encrypted" flag: zipfile asks for a password
    "encrypted_member": lambda: _patched_entry(
        docx(_docx_body("<w:p/>")), b"word/document.xml", 6, b"\x01\x00"
    ),
    "truncated": lambda: docx(_docx_body("<w:p><w:r><w:t>x</w:t></w:r></w:p>" * 50))[:-200],
    "unclosed_xml": lambda: docx(_DOCX_HEAD + b"<w:p><w:r><w:t>x</w:t>"),
    "undefined_entity": lambda: docx(_docx_body("<w:p><w:r><w:t>&nbsp;</w:t></w:r></w:p>")),
    "surrogate_character_reference": lambda: docx(_docx_body("<w:p><w:r><w:t>&#xD800;</w:t></w:r></w:p>")),
    "no_body": lambda: docx(f'<w:document xmlns:w="{_W_NS}"/>'.encode()),
}


# --- Measuring: peak RSS of a fresh process parsing one document ----------------------------------

_PROBE = """
import json, resource, sys, time
from pathlib import Path
import embedding_pipeline.pipeline.embed  # what the function has imported when it parses
from testkit.adversarial import default_limits
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.stages.documents import chunk_document, parse_document
from embedding_pipeline.stages.vectorize import content_hash

def peak_mb():
    # VmHWM, not ru_maxrss: on Linux ru_maxrss keeps the forking parent's peak across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

chunking, limits = default_limits()
baseline = peak_mb()
data = Path(sys.argv[1]).read_bytes()
started = time.perf_counter()
try:
    document = parse_document(data, sys.argv[2], limits=limits)
    del data  # as the pipeline's loader lets the bytes go once parsed
    chunks = chunk_document(document, chunking, limits)
    del document
    hashes = [content_hash(chunk.text) for chunk in chunks]
    outcome = f"{len(chunks)} chunks"
except PermanentError as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "seconds": round(time.perf_counter() - started, 1),
                  "baseline_rss_mb": baseline, "peak_rss_mb": peak_mb()}))
"""


def default_limits() -> tuple[ChunkingSettings, Limits]:
    """The chunking and limits of a function with the default settings."""
    fields = Settings.model_fields
    chunking = ChunkingSettings(
        max_tokens=fields["chunk_max_tokens"].default,
        overlap_tokens=fields["chunk_overlap_tokens"].default,
        chars_per_token=fields["chars_per_token"].default,
    )
    return chunking, Limits(max_chunks=fields["max_chunks_per_document"].default)


def peak_rss(path: Path, key: str, *, timeout_s: float = 900) -> dict[str, Any]:
    """Parse, chunk and hash the file at `path` (named `key`) in a fresh interpreter that has the
    function's modules imported, with the default settings' limits: its outcome, seconds, and peak RSS
    (`peak_rss_mb`, and `baseline_rss_mb` before reading the file). Run from the project's folder."""
    child = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _PROBE, str(path), key],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if child.returncode != 0:
        return {"error": child.stderr[-2000:]}
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures
