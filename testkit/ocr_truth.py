"""What a test scan says: the ground-truth markers of the OCR contract (docs: notes/ocr-contract.md).

A test cannot ask a real OCR engine what a picture says, so every scan that testkit builds carries its
text beside the pixels, where an image or PDF reader ignores it:

- PNG: an `iTXt` chunk with keyword `testkit-ocr`, the UTF-8 text;
- JPEG: a COM segment whose payload is `testkit-ocr:` + the UTF-8 text;
- PDF: each page dictionary's `/TestkitOcr`, a PDF text string (UTF-16BE with a BOM when not ASCII).

This module writes and reads those markers with the standard library and pypdf only, never Pillow:
the OCR emulator reads them on every request, in the tests and in the benchmarks alike. A scan
without a marker says nothing (a blank page), as the contract has it.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

PNG_KEYWORD = b"testkit-ocr"
JPEG_PREFIX = b"testkit-ocr:"
PDF_KEY = "/TestkitOcr"

MIME_TYPES = ("image/jpeg", "image/png", "application/pdf")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_COM = 0xFE
_SOS, _EOI = 0xDA, 0xD9
# Start-of-frame markers carry the image's size; C4 (Huffman tables), C8 and CC (arithmetic coding) do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_SEGMENT = 0xFFFF - 2  # a segment's length field counts itself


class UnreadableScan(ValueError):
    """The bytes are not the image or PDF their MIME type says (what the real service refuses with 400)."""


@dataclass(frozen=True, slots=True)
class ScanPage:
    text: str  # what the page says: its marker, or "" for a page without one
    width: int  # pixels for an image; points (the MediaBox) for a PDF page
    height: int


# --- Writing the markers ----------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def mark_png(png: bytes, text: str) -> bytes:
    """`png` with an iTXt chunk saying `text`, right after IHDR (uncompressed, no language tag)."""
    if not png.startswith(_PNG_SIGNATURE):
        raise UnreadableScan("not a PNG")
    ihdr_end = len(_PNG_SIGNATURE) + 12 + struct.unpack(">I", png[8:12])[0]
    chunk = _png_chunk(b"iTXt", PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + text.encode())
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def mark_jpeg(jpeg: bytes, text: str) -> bytes:
    """`jpeg` with COM segments saying `text`, after SOI and the JFIF APP0 segment if there is one.

    A segment holds at most 64 KB, so a longer text is split over several, each with the prefix; the
    reader joins them in order.
    """
    if not jpeg.startswith(_JPEG_SOI):
        raise UnreadableScan("not a JPEG")
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # JFIF wants its APP0 first
        at = 4 + struct.unpack(">H", jpeg[4:6])[0]
    payload = text.encode()
    room = _MAX_SEGMENT - len(JPEG_PREFIX)
    parts = [payload[start : start + room] for start in range(0, len(payload), room)] or [b""]
    segments = b"".join(
        b"\xff\xfe" + struct.pack(">H", len(JPEG_PREFIX) + len(part) + 2) + JPEG_PREFIX + part
        for part in parts
    )
    return jpeg[:at] + segments + jpeg[at:]


def pdf_text_string(text: str) -> bytes:
    """`text` as a PDF string object: a literal for ASCII, else UTF-16BE with a BOM in hex, as the
    contract says (and as PDF text strings outside PDFDocEncoding must be)."""
    if text.isascii():
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").replace("\r", "\\r")
        return b"(" + escaped.encode("ascii") + b")"
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode() + b">"


# --- Reading them -----------------------------------------------------------------------------------


def _png_pages(data: bytes) -> list[ScanPage]:
    if not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise UnreadableScan("not a PNG image")
    width, height = struct.unpack(">II", data[16:24])
    text, at = "", len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I", data[at : at + 4])[0], data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        if kind == b"IEND":
            break
        if kind == b"iTXt" and body.startswith(PNG_KEYWORD + b"\x00"):
            text = _itxt_text(body[len(PNG_KEYWORD) + 1 :])
        at += 12 + length
    return [ScanPage(text, width, height)]


def _itxt_text(body: bytes) -> str:
    """An iTXt chunk's text after its keyword: flag, method, language tag, translated keyword, text."""
    compressed = body[:1] == b"\x01"
    _language, _, rest = body[2:].partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    try:
        return (zlib.decompress(text) if compressed else text).decode()
    except (zlib.error, UnicodeDecodeError):
        raise UnreadableScan("a testkit-ocr iTXt chunk that is not UTF-8 text") from None


def _jpeg_pages(data: bytes) -> list[ScanPage]:
    if not data.startswith(_JPEG_SOI):
        raise UnreadableScan("not a JPEG image")
    size: tuple[int, int] | None = None
    payload, at = b"", 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            raise UnreadableScan(f"a JPEG segment that does not start with a marker at byte {at}")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in (_SOS, _EOI):
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            at += 2
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        body = data[at + 4 : at + 2 + length]
        if marker == _COM and body.startswith(JPEG_PREFIX):
            payload += body[len(JPEG_PREFIX) :]
        elif marker in _SOF and len(body) >= 5:
            height, width = struct.unpack(">HH", body[1:5])
            size = (width, height)
        at += 2 + length
    if size is None:
        raise UnreadableScan("a JPEG image without a frame header")
    try:
        return [ScanPage(payload.decode(), *size)]
    except UnicodeDecodeError:
        raise UnreadableScan("a testkit-ocr COM segment that is not UTF-8 text") from None


def _pdf_pages(data: bytes) -> list[ScanPage]:
    # pypdf is the function's own dependency; imported here so that reading an image costs nothing more
    from pypdf import PdfReader  # noqa: PLC0415

    try:
        pages = []
        for page in PdfReader(io.BytesIO(data)).pages:
            text = page.get(PDF_KEY)
            box = page.mediabox
            pages.append(ScanPage("" if text is None else str(text), round(box.width), round(box.height)))
    except Exception as error:  # any pypdf failure means the service cannot read it
        raise UnreadableScan(f"not a readable PDF: {error}") from None
    return pages


def read_scan(data: bytes, mime: str) -> list[ScanPage]:
    """Each page of a scan (one for an image), with what it says and its size.

    Raises UnreadableScan where the bytes are not of the MIME type given, and ValueError for a MIME type
    the service does not take."""
    if mime == "image/png":
        return _png_pages(data)
    if mime == "image/jpeg":
        return _jpeg_pages(data)
    if mime == "application/pdf":
        return _pdf_pages(data)
    raise ValueError(f"unsupported mime type {mime!r}: one of {', '.join(MIME_TYPES)}")


def ground_truth(data: bytes, mime: str) -> list[str]:
    """What each page of a scan says, in page order: the texts the OCR emulator answers with."""
    return [page.text for page in read_scan(data, mime)]
