"""RTF: the body's text, by a tokenizer of our own, in one pass (time linear in the file).

Not striprtf: it runs regular expressions over the whole file that backtrack on crafted input (its
hyperlink pattern is quadratic in a one-line file, and RTF is often one line), builds its output by
string concatenation, gives `\\u55357?\\u56832?` as two lone surrogates, and fails on a byte its
code page leaves undefined. Here:

- Bytes (`\\'e0` escapes and raw 8-bit text) are decoded in the code page of their font's
  `\\fcharset` (`\\cpg` where given), else the document's `\\ansicpg` (cp1252 without one), with
  undefined bytes as U+FFFD; consecutive bytes are decoded together, so double-byte code pages work.
- `\\uN` is the character N (negative N is N + 65536), a UTF-16 pair joined into one character, a
  lone half U+FFFD; the `\\ucN` fallback characters after it are dropped.
- Destinations that are not body text (the font, colour and style tables, document info, pictures,
  objects' data, field instructions, headers and footers, footnotes, `{\\*...}` groups) are skipped,
  `\\binN` data with them; `\\par` ends a paragraph, `\\line` a line, `\\tab` and `\\cell` are tabs.
- Groups may nest 1,000 deep outside skipped destinations (each level holds a state); deeper is
  refused. Skipped groups only count their depth.
"""

from __future__ import annotations

import codecs
import re

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.model import (
    MAX_TEXT_CHARS,
    Limits,
    Meter,
    ParsedDocument,
    has_text,
    whole,
)

_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|[\r\n]+|[^\\{}\r\n]+", re.DOTALL
)
_START = re.compile(rb"\s*\{\\rtf")
_MAX_DEPTH = 1000
# Destinations that are not the body's text: skipped with every group inside them
_SKIPPED = frozenset({
    "colortbl", "stylesheet", "info", "pict", "objdata", "fldinst", "header",
    "headerl", "headerr", "headerf", "footer", "footerl", "footerr", "footerf", "footnote",
    "listtable", "listoverridetable", "rsidtbl", "xmlnstbl", "themedata", "colorschememapping",
    "datastore", "latentstyles", "generator", "pntext", "pntxta", "pntxtb", "filetbl", "revtbl",
    "userprops", "docvar", "template", "private", "nonshppict", "shpinst", "annotation", "atnid",
    "atnauthor", "comment", "bkmkstart", "bkmkend", "xe", "tc", "txe",
})  # fmt: skip
_TEXT = {
    "par": "\n\n", "sect": "\n\n", "page": "\n\n", "line": "\n", "row": "\n", "tab": "\t",
    "cell": "\t", "emdash": "\u2014", "endash": "\u2013", "bullet": "\u2022", "lquote": "\u2018",
    "rquote": "\u2019", "ldblquote": "\u201c", "rdblquote": "\u201d", "emspace": "\u2003",
    "enspace": "\u2002", "qmspace": "\u2005",
}  # fmt: skip
_SYMBOLS = {"\\": "\\", "{": "{", "}": "}", "~": "\xa0", "_": "\u2011", "-": "", "\n": "\n\n", "\r": "\n\n"}
_CHARSETS = {
    77: "mac_roman", 128: "cp932", 129: "cp949", 130: "johab", 134: "gbk", 136: "big5", 161: "cp1253",
    162: "cp1254", 163: "cp1258", 177: "cp1255", 178: "cp1256", 186: "cp1257", 204: "cp1251",
    222: "cp874", 238: "cp1250", 255: "cp437",
}  # fmt: skip
_CHARSETS_DEFAULT = (0, 1)  # ANSI and DEFAULT: the document's \ansicpg


def rtf_text(data: bytes, limits: Limits) -> ParsedDocument:
    if not _START.match(data):
        raise UnsupportedDocument("not an RTF document (it does not start with {\\rtf)")
    reader = _Reader(Meter(limits, "parsing"))
    reader.read(data)
    text = reader.text()
    if not has_text(text):
        raise EmptyDocument("RTF has no text")
    return whole(text, "rtf")


class _Reader:
    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self._out = _Output()
        self._bytes = bytearray()  # undecoded, in the current code page
        self._high = 0  # the first half of a UTF-16 pair given by \u
        self._codepage = "cp1252"  # the document's
        self._fonts: dict[int, str | None] = {}  # font number: its code page, None for the document's
        self._defining = 0  # the font table's entry being read
        # per group: \uc's count, the font, whether it is the font table
        self._stack: list[tuple[int, int | None, bool]] = []
        self._uc, self._in_fonts = 1, False
        self._font: int | None = None
        self._skip = 0  # depth inside a skipped destination (0: not in one)
        self._fallback = 0  # \uc characters still to drop

    def read(self, data: bytes) -> None:
        position = 0
        while position <= len(data):
            position = self._read_from(data, position)

    def _read_from(self, data: bytes, position: int) -> int:
        """Tokens from `position` to the end (then past the end), or to a \\bin: then where its data
        ends, so that the data is skipped unread."""
        for token in _TOKEN.finditer(data, position):
            self._meter.step()
            word, argument, hexadecimal, symbol, brace = token.groups()
            if word is not None:
                number = int(argument) if argument is not None else None
                if word == b"bin" and number is not None and number > 0:
                    self._fallback = 0
                    return token.end() + number
                if not self._skip:
                    self._control(word, number)
            elif brace is not None:
                if self._group(brace == b"{"):
                    break  # the document's group closed: what follows is not part of it
            elif self._skip or self._in_fonts:
                continue
            elif hexadecimal is not None:
                if self._drop_fallback(1) == 0:
                    self._take(bytes((int(hexadecimal, 16),)))
            elif symbol is not None:
                self._fallback = 0
                self._add(_SYMBOLS.get(symbol.decode("latin-1"), ""))
                if symbol == b"*":
                    self._skip = 1
            elif token.group()[:1] not in b"\r\n":
                run = token.group()
                self._take(run[self._drop_fallback(len(run)) :])
        return len(data) + 1

    def _take(self, data: bytes) -> None:
        if self._high and data:
            self._flush()
        self._bytes += data

    def _drop_fallback(self, available: int) -> int:
        dropped = min(self._fallback, available)
        self._fallback -= dropped
        return dropped

    def _group(self, opening: bool) -> bool:
        """A brace; True once the outermost group has closed."""
        self._fallback = 0
        if self._skip:
            self._skip += 1 if opening else -1
            if self._skip:
                return False
            opening = False  # the skipped group's own brace: its state pops below
        if opening:
            if len(self._stack) >= _MAX_DEPTH:
                raise UnsupportedDocument(f"RTF groups nested over {_MAX_DEPTH} deep")
            self._stack.append((self._uc, self._font, self._in_fonts))
            return False
        self._flush()
        if not self._stack:
            return True
        self._uc, self._font, self._in_fonts = self._stack.pop()
        return not self._stack

    def _control(self, word: bytes, number: int | None) -> None:
        self._fallback = 0
        name = word.decode("ascii")
        if self._in_fonts:
            if name == "f" and number is not None:
                self._defining = number
            elif name == "fcharset" and number is not None:
                self._fonts[self._defining] = None if number in _CHARSETS_DEFAULT else _CHARSETS.get(number)
            elif name == "cpg" and number is not None:
                self._fonts[self._defining] = _codepage(number)
            return
        if name == "fonttbl":
            self._in_fonts = True
        elif name in _SKIPPED:
            self._flush()
            self._skip = 1
        elif name in _TEXT:
            self._add(_TEXT[name])
        elif name == "u" and number is not None:
            self._unicode(number)
        elif name == "uc" and number is not None:
            self._uc = max(0, number)
        elif name == "f" and number is not None:
            self._flush()
            self._font = number
        elif name == "ansicpg" and number is not None:
            self._codepage = _codepage(number) or "cp1252"
        elif name in ("mac", "pc", "pca"):
            self._codepage = {"mac": "mac_roman", "pc": "cp437", "pca": "cp850"}[name]

    def _unicode(self, number: int) -> None:
        code = number + 65536 if number < 0 else number
        if self._high and 0xDC00 <= code < 0xE000:
            code, self._high = 0x10000 + ((self._high - 0xD800) << 10) + (code - 0xDC00), 0
        if 0xD800 <= code < 0xDC00:
            self._flush()
            self._high = code
        else:
            self._add(chr(code) if code <= 0x10FFFF and not 0xDC00 <= code < 0xE000 else "\ufffd")
        self._fallback = self._uc

    def _add(self, text: str) -> None:
        self._flush()
        if text:
            self._out.append(text)

    def _flush(self) -> None:
        if self._high:  # the first half of a UTF-16 pair, not followed by its second
            self._high = 0
            self._out.append("\ufffd")
        if self._bytes:
            codepage = self._fonts.get(self._font) if self._font is not None else None
            self._out.append(bytes(self._bytes).decode(codepage or self._codepage, errors="replace"))
            self._bytes.clear()

    def text(self) -> str:
        self._flush()
        return self._out.text()


class _Output:
    """Text pieces joined in blocks as they come: a million one-character pieces cost their text."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        self._blocks: list[str] = []
        self._length = 0

    def append(self, text: str) -> None:
        self._pieces.append(text)
        self._length += len(text)
        if self._length > MAX_TEXT_CHARS:
            raise DocumentTooLarge(
                f"the text extracted from this rtf document is over {MAX_TEXT_CHARS} characters"
            )
        if len(self._pieces) >= 4096:
            self._blocks.append("".join(self._pieces))
            self._pieces = []

    def text(self) -> str:
        return "".join([*self._blocks, *self._pieces])


def _codepage(number: int) -> str | None:
    name = f"cp{number}"
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return name
