"""Images (PNG, JPEG): nothing to parse, one page for OCR to read (pipeline/ocr.py).

What Vision OCR would refuse is refused here, before anything is paid: a file that is not the image
its name says, over 10 MB, or over 20 megapixels (Vision's limits, docs/design.md). The size is read
from the header (PNG's IHDR, JPEG's start-of-frame): no image library is shipped for it.
"""

from __future__ import annotations

import struct

from embedding_pipeline.errors import DocumentTooLarge, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Limits, Meter, ParsedDocument

OCR_MAX_BYTES = 10 * 1024 * 1024
OCR_MAX_PIXELS = 20_000_000
MIME_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
_PNG = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, ...); C4, C8 and CC are not frames.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def image_page(data: bytes, limits: Limits, kind: str) -> ParsedDocument:
    """An image as a document of one unread page; UnsupportedDocument for bytes that are not one."""
    Meter(limits, "parsing")
    width, height = _png_size(data) if kind == "png" else _jpeg_size(data)
    if len(data) > OCR_MAX_BYTES:
        raise DocumentTooLarge(f"image of {len(data)} bytes: Vision OCR reads images of at most 10 MB")
    if width * height > OCR_MAX_PIXELS:
        raise DocumentTooLarge(
            f"image of {width}x{height} pixels: Vision OCR reads at most 20 megapixels; scale it down"
        )
    return ParsedDocument("", "image", (), unread_pages=(1,))


def _png_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(_PNG) or data[12:16] != b"IHDR" or len(data) < 24:
        raise UnsupportedDocument("not a PNG image (no PNG signature and IHDR header)")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int]:
    if not data.startswith(b"\xff\xd8\xff"):
        raise UnsupportedDocument("not a JPEG image (no JPEG signature)")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _SOF and position + 9 <= len(data):
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return int(width), int(height)
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            break
        position += 2 + length
    raise UnsupportedDocument("broken JPEG image (no frame header with its size)")
