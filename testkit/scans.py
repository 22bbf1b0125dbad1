"""Scanned documents for the OCR tests: text drawn in black on white, as a scanner would hand it over.

Every image is rendered with a real TrueType font (DejaVu Sans where the system has it) at a size a real
OCR engine reads, and carries the contract's ground-truth marker (testkit/ocr_truth.py), so the OCR
emulator answers with exactly what the picture shows. PDFs are written by hand, object by object, so a
test knows what each page holds:

- `scanned_pdf`: each page one image covering it and no text layer (pypdf extracts nothing);
- `text_pdf`: each page a real text layer in Helvetica (pypdf extracts the text), no image;
- `garbled_pdf`: each page the image plus an invisible text layer whose font maps every character to a
  punctuation glyph, as a PDF with a broken font encoding does (pypdf extracts symbols, no letters);
- `mixed_pdf`: any of those kinds, page by page.

Every PDF page carries `/TestkitOcr` with its text, whatever its kind: the marker says what the page
shows, and a real OCR engine would read a text page too. Pillow is a developers' dependency only
(requirements-dev.txt): it is imported here, never by the function nor by the emulator.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from testkit.adversarial import pdf, stream
from testkit.ocr_truth import ground_truth, mark_jpeg, mark_png, pdf_text_string, read_scan

__all__ = [
    "PageKind",
    "garbled_pdf",
    "ground_truth",
    "mixed_pdf",
    "read_scan",
    "scan_jpeg",
    "scan_png",
    "scanned_pdf",
    "text_pdf",
]

PageKind = Literal["scan", "text", "garbled"]

FONT_PX = 30  # at 150 dpi a 14 pt line: what office scanners hand OCR engines
PAGE_PX = (1240, 1754)  # A4 at 150 dpi
PAGE_PT = (595, 842)  # A4 in points
MARGIN_PX = 90
_FONT_NAMES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")

# Glyphs a garbled page's font draws instead of letters: each an Adobe glyph name pypdf maps to a symbol.
_GARBLE_GLYPHS = (
    "bullet", "section", "paragraph", "dagger", "daggerdbl", "periodcentered", "brokenbar", "degree",
    "currency", "plusminus", "multiply", "divide", "logicalnot", "guillemotleft", "guillemotright",
    "exclamdown",
)  # fmt: skip


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@functools.cache
def _font(size: int) -> Font:
    """DejaVu Sans (or another free sans) from the system's fonts; Pillow's own scalable font otherwise."""
    for folder in _FONT_DIRS:
        for name in _FONT_NAMES:
            for path in sorted(Path(folder).rglob(name)) if Path(folder).is_dir() else ():
                return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # FreeType-backed, so scalable, since Pillow 10.1


def _wrap(text: str, font: Font, width: int) -> list[str]:
    """`text` broken into lines no wider than `width` pixels: at spaces, inside a word only if it must."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = ""
            for char in word:
                if line and font.getlength(line + char) > width:
                    lines.append(line)
                    line = ""
                line += char
        lines.append(line)
    return lines


def _render(text: str, width: int, min_height: int, size: int = FONT_PX) -> Image.Image:
    """`text` in black on white, wrapped to `width`, the image as tall as it needs (at least `min_height`)."""
    font = _font(size)
    lines = _wrap(text, font, width - 2 * MARGIN_PX)
    step = round(size * 1.45)
    image = Image.new("L", (width, max(min_height, 2 * MARGIN_PX + step * len(lines))), 255)
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((MARGIN_PX, MARGIN_PX + number * step), line, font=font, fill=0)
    return image


def scan_png(text: str, *, width: int = 1200) -> bytes:
    """A grayscale PNG showing `text`, as tall as the text needs, with the iTXt ground truth."""
    out = io.BytesIO()
    _render(text, width, min_height=0).save(out, "PNG")
    return mark_png(out.getvalue(), text)


def scan_jpeg(text: str, *, width: int = 1200, quality: int = 85) -> bytes:
    """A grayscale JPEG showing `text`, as tall as the text needs, with the COM-segment ground truth."""
    out = io.BytesIO()
    _render(text, width, min_height=0).save(out, "JPEG", quality=quality)
    return mark_jpeg(out.getvalue(), text)


# --- PDFs ---------------------------------------------------------------------------------------------


def _page_image(text: str) -> tuple[bytes, int]:
    """An A4 page at 150 dpi showing `text`, as a 1-bit Flate image XObject (a few KB a page: a
    hundred pages build in seconds and stay far under the service's 10 MB), and the height in points
    of the page it covers (a long text makes a long page)."""
    image = _render(text, PAGE_PX[0], min_height=PAGE_PX[1]).convert("1", dither=Image.Dither.NONE)
    head = b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 1 "
    height_pt = round(image.height * PAGE_PT[0] / PAGE_PX[0])
    return stream(image.tobytes(), flate=True, extra=head % image.size), height_pt


def _encoded(text: str) -> tuple[list[bytes], dict[int, str]]:
    """`text`'s lines as character codes for Helvetica, and the /Differences its other characters need.

    What WinAnsi (cp1252) has keeps its code and is drawn by Helvetica; every other character (Cyrillic,
    say) gets a free code from 128 up named `uniXXXX`, which pypdf, like any reader following the Adobe
    glyph list, maps back to the character. Helvetica has no glyph for those, so a viewer may draw
    boxes: the text layer, not its look, is what these pages are for. Control characters are left out."""
    foreign = {char for char in text if not char.isascii()}
    winansi = {char: code for char in foreign if (code := _cp1252(char)) is not None}
    free = sorted(set(range(128, 256)) - set(winansi.values()))
    others = sorted(foreign - winansi.keys())
    if len(others) > len(free):
        raise ValueError(f"a text page holds at most {len(free)} different characters outside WinAnsi")
    named = dict(zip(others, free, strict=False))
    codes = {chr(code): code for code in range(32, 127)} | winansi | named
    lines = [line.replace("\t", " ") for line in _lines_for_text_layer(text)]
    encoded = [bytes(codes[char] for char in line if char in codes) for line in lines]
    return encoded, {code: f"uni{ord(char):04X}" for char, code in named.items()}


def _cp1252(char: str) -> int | None:
    try:
        return char.encode("cp1252")[0]
    except UnicodeEncodeError:
        return None


def _lines_for_text_layer(text: str, width: int = 80) -> list[str]:
    """Lines of at most `width` characters (Helvetica 11 pt across A4's text width), broken at spaces."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def _font_object(differences: dict[int, str]) -> bytes:
    names = b" ".join(b"%d /%s" % (code, name.encode()) for code, name in sorted(differences.items()))
    encoding = b"<< /Type /Encoding /BaseEncoding /WinAnsiEncoding /Differences [%s] >>" % names
    return b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding %s >>" % encoding


def _literal(codes: bytes) -> bytes:
    """Character codes as a PDF literal string: parentheses and backslashes escaped, the rest octal
    where not printable ASCII."""
    return b"(%s)" % b"".join(
        b"\\" + bytes([code]) if code in b"()\\" else bytes([code]) if 32 <= code < 127 else b"\\%03o" % code
        for code in codes
    )


def _text_ops(lines: list[bytes], top_pt: int, invisible: bool = False) -> bytes:
    mode = b"3 Tr " if invisible else b""  # invisible, as OCR'd PDFs lay text over their images
    shown = b" T* ".join(_literal(line) + b" Tj" for line in lines)
    return b"BT %s/F1 11 Tf 14 TL 72 %d Td %s ET" % (mode, top_pt - 72, shown)


def _garbled(lines: list[bytes]) -> dict[int, str]:
    """/Differences that draw every code but the space as a symbol: what a font without a usable
    encoding makes of a page's text."""
    used = {code for line in lines for code in line} - {32}
    return {code: _GARBLE_GLYPHS[code % len(_GARBLE_GLYPHS)] for code in sorted(used)}


def mixed_pdf(pages: Sequence[tuple[str, PageKind]]) -> bytes:
    """A PDF with one page per (text, kind): "scan" (an image only), "text" (a Helvetica text layer
    only) or "garbled" (the image and a text layer that extracts as symbols); each with `/TestkitOcr`.

    Pages showing the same text share one image object, so long documents stay small."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    images: dict[str, tuple[int, int]] = {}  # text → (image object, page height)
    kids = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    for text, kind in pages:
        resources, content, height = [], b"", PAGE_PT[1]
        if kind in ("scan", "garbled"):
            if text not in images:
                image, image_height = _page_image(text)
                images[text] = (add(image), image_height)
            image_object, height = images[text]
            resources.append(b"/XObject << /Im0 %d 0 R >>" % image_object)
            content = b"q %d 0 0 %d 0 0 cm /Im0 Do Q\n" % (PAGE_PT[0], height)
        if kind in ("text", "garbled"):
            lines, differences = _encoded(text)
            if kind == "garbled":
                differences = _garbled(lines)
            resources.append(b"/Font << /F1 %d 0 R >>" % add(_font_object(differences)))
            content += _text_ops(lines, height, invisible=kind == "garbled")
        elif kind != "scan":
            raise ValueError(f"unknown page kind {kind!r}: scan, text or garbled")
        contents = add(stream(content, flate=True))
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R /Resources << %s >> "
        page %= (PAGE_PT[0], height, contents, b" ".join(resources))
        kids.append(add(page + b"/TestkitOcr %s >>" % pdf_text_string(text)))
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    return pdf(objects)


def scanned_pdf(pages: Sequence[str]) -> bytes:
    """A scanned PDF: each page one image showing its text, no text layer."""
    return mixed_pdf([(text, "scan") for text in pages])


def text_pdf(pages: Sequence[str]) -> bytes:
    """A born-digital PDF: each page its text in Helvetica, which pypdf extracts."""
    return mixed_pdf([(text, "text") for text in pages])


def garbled_pdf(pages: Sequence[str]) -> bytes:
    """A PDF whose text layer extracts as symbols while its images show the text (a broken font)."""
    return mixed_pdf([(text, "garbled") for text in pages])
