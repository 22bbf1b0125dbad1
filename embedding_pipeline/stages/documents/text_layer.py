"""Is a PDF page's text layer usable, or must the page be read by OCR (`needs_ocr`)? A font without
a usable /ToUnicode map extracts as codes (pypdf #375; PyMuPDF #1727: "the only solution is to OCR
this page"); a scan has no text but a footer. Thresholds: measured by bench/text_layer.py. Shares are
over `MIN_BASE` characters at least: an odd character on a short page weighs as on a line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MIN_BASE = 32
MAX_UNREADABLE = 0.05  # good pages: 0; garbled (controls, U+FFFD, PUA, names): 0.16+ (0.06: "12")
MAX_SOUP = 0.2  # good pages (Perl, LaTeX, ASCII tables, formulas): at most 0.17; symbol soup: 0.25+
MAX_MOJIBAKE = 0.5  # good pages (French, Hungarian): at most 0.08; cp1251 read as Latin-1: 0.99+
MIN_TEXT_OVER_IMAGE = 200  # non-space characters: scans' footers and stamps have < 60, text pages 700+
MIN_IMAGE_PIXELS = 250_000  # a page image (72 dpi A4: 485,000 pixels), not a logo or an icon
_MAX_XOBJECTS = 64  # XObjects looked at per page: bounded work on crafted files
# Never text: C0/C1 controls, surrogates, U+FFFD, planes 15-16; BMP private use in runs (Word: • is F0B7)
_UNREADABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd\U000f0000-\U0010ffff]")
_PRIVATE_USE_RUN = re.compile("[\ue000-\uf8ff]{2,}")
_GLYPH_NAMES = re.compile(r"/[A-Za-z]{1,12}[0-9]{1,5}(?:/[A-Za-z]{1,12}[0-9]{1,5})+(?![\w.])")  # "/g4/g5"
_REPEAT = re.compile(r"([^\w\s]|_)\1+")  # dot leaders, rules, underscores to sign on: one character each
_ASCII_PUNCT = re.compile("[!-/:-@\\[-`{-~\u2018\u2019]")  # StandardEncoding has ‘ ’ at 0x60 and 0x27
_ALNUM_RUN = re.compile(r"[^\W_]+")  # letters and digits in a row: words, numbers, identifiers
_LATIN1_LETTER = re.compile("[\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff]")
_INLINE = re.compile(rb"(?<![^\s\]>)])BI\s(.{0,512}?)\sID\s", re.DOTALL)  # an inline image's dictionary
_INLINE_SIZE = re.compile(rb"/(W|Width|H|Height)\s+(\d{1,6})")


@dataclass(frozen=True, slots=True)
class TextLayerQuality:
    chars: int  # non-space characters
    unreadable: float  # share of control characters, U+FFFD, private use runs, glyph names
    soup: float  # share of ASCII punctuation, over the mean length of letter-and-digit runs
    mojibake: float  # share of letters (over 8 at least) that are Latin-1's À-ÿ: cp1251 read as Latin-1

    @property
    def garbled(self) -> bool:
        return self.unreadable >= MAX_UNREADABLE or self.soup >= MAX_SOUP or self.mojibake >= MAX_MOJIBAKE


def measure(text: str) -> TextLayerQuality:
    """Regular-expression passes over the page's text, all linear: ~0.1 ms per 1,000 characters."""
    chars = _non_space(text)
    unreadable = len(_UNREADABLE.findall(text))
    unreadable += sum(map(len, _PRIVATE_USE_RUN.findall(text))) + sum(map(len, _GLYPH_NAMES.findall(text)))
    collapsed = _REPEAT.sub(r"\1", text)
    # Symbol soup is both: many symbols, and short runs of letters and digits between them. Code and
    # ASCII tables have the symbols but long identifiers; numbers and formulas short runs, fewer symbols.
    runs = _ALNUM_RUN.findall(collapsed)
    alnum = sum(map(len, runs))
    mean_run = max(1.0, alnum / len(runs)) if runs else 1.0
    return TextLayerQuality(
        chars=chars,
        unreadable=unreadable / max(chars, MIN_BASE),
        soup=len(_ASCII_PUNCT.findall(collapsed)) / max(_non_space(collapsed), MIN_BASE) / mean_run,
        mojibake=len(_LATIN1_LETTER.findall(text)) / max(alnum - sum(map(text.count, "0123456789")), 8),
    )


def _non_space(text: str) -> int:  # str.split takes U+001C-U+001F for spaces: here they are controls
    return len("".join(text.split())) + sum(map(text.count, "\x1c\x1d\x1e\x1f"))


def usable_text_layer(text: str) -> bool:  # as far as the text alone can tell
    return not measure(text).garbled


def needs_ocr(text: str, *, shows_image: bool) -> bool:
    """The page must be read by OCR: its text is garbled (image or not), or it shows an image under
    fewer than `MIN_TEXT_OVER_IMAGE` characters (a scan with a footer; a photo with a caption, where
    the image may hold the text). A page without text or image is blank: no OCR."""
    quality = measure(text)
    return quality.garbled or (shows_image and quality.chars < MIN_TEXT_OVER_IMAGE)


def page_shows_image(page: Any) -> bool:
    """The pypdf page has `MIN_IMAGE_PIXELS` of images: XObjects of its resources (and its forms'), and
    inline images in contents pypdf has inflated (call it after extract_text). No stream is decoded, at
    most `_MAX_XOBJECTS` dictionaries read; where images are drawn would take the content stream."""
    pixels = _xobject_pixels(page.get("/Resources"), [_MAX_XOBJECTS], depth=0)
    return pixels >= MIN_IMAGE_PIXELS or pixels + _inline_pixels(page) >= MIN_IMAGE_PIXELS


def _object(value: Any) -> Any:  # an indirect reference's object; anything else as it is
    return value.get_object() if hasattr(value, "get_object") else value


def _xobject_pixels(resources: Any, budget: list[int], depth: int) -> int:
    resources = _object(resources)
    xobjects = _object(resources.get("/XObject")) if isinstance(resources, dict) else None
    pixels = 0
    for value in xobjects.values() if isinstance(xobjects, dict) else ():
        budget[0] -= 1
        xobject = _object(value)
        if budget[0] < 0 or not isinstance(xobject, dict):
            break
        if xobject.get("/Subtype") == "/Image":
            width, height = _object(xobject.get("/Width")), _object(xobject.get("/Height"))
            pixels += width * height if isinstance(width, int) and isinstance(height, int) else 0
        elif xobject.get("/Subtype") == "/Form" and depth < 1:
            pixels += _xobject_pixels(xobject.get("/Resources"), budget, depth + 1)
    return pixels


def _inline_pixels(page: Any) -> int:
    contents = _object(page.get("/Contents"))
    pixels = 0
    for stream in map(_object, contents if isinstance(contents, list) else [contents]):
        # Its bytes only when they cost nothing: unfiltered, or inflated already (pypdf's decoded_self).
        filtered = isinstance(stream, dict) and "/Filter" in stream
        source: Any = getattr(stream, "decoded_self", None) if filtered else stream
        data = bytes(source.get_data()) if hasattr(source, "get_data") else b""
        for found, _ in zip(_INLINE.finditer(data), range(16), strict=False):
            size = {key[:1]: int(value) for key, value in _INLINE_SIZE.findall(found.group(1))}
            pixels += size.get(b"W", 0) * size.get(b"H", 0)
    return pixels
