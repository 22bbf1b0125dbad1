"""Bytes to text: UTF-8 (with or without BOM), UTF-16 with a BOM, else a detected legacy encoding.

Russian documents often come in cp1251 (or koi8-r); short ones are where detectors are weakest, so
bytes that are mostly in cp1251's Cyrillic range are tried as cp1251 before asking the detector.
"""

from __future__ import annotations

import codecs

from embedding_pipeline.errors import UnsupportedDocument
from embedding_pipeline.stages.documents.model import refuse_lone_surrogates

_SAMPLE = 8192
_CONTROL_SHARE_LIMIT = 0.05
_ALLOWED_CONTROLS = frozenset("\t\n\r\f\v")


def decode_text(data: bytes) -> str:
    """The text, with Unix line ends.

    For UTF-8 and cp1251 (nearly every file) line ends are rewritten in the bytes, before decoding:
    a str of ASCII with one emoji takes 4 bytes a character, and rewriting it would hold two copies.
    """
    if data.startswith(codecs.BOM_UTF8):
        return _decode(data[len(codecs.BOM_UTF8) :], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(data, "utf-16", lines_in_bytes=False)
    if b"\x00" in data[:_SAMPLE]:
        raise UnsupportedDocument("binary file (NUL bytes), not text")
    try:
        return _decode(data, "utf-8", refuse=False)
    except UnicodeDecodeError:
        pass
    if _looks_cp1251(data[:_SAMPLE]):
        try:
            return _decode(data, "cp1251", refuse=False)
        except UnicodeDecodeError:  # one of the five bytes cp1251 leaves undefined: ask the detector
            pass
    # Imported here: only legacy-encoded files need detection, and the import costs cold-start time.
    from charset_normalizer import from_bytes  # noqa: PLC0415

    best = from_bytes(data[: 256 * 1024]).best()
    if best is None or best.encoding is None:
        raise UnsupportedDocument("text encoding could not be detected")
    text = _decode(data, best.encoding, lines_in_bytes=False)
    refuse_lone_surrogates(text, f"text decoded as {best.encoding}")
    return text


def _decode(data: bytes, encoding: str, *, lines_in_bytes: bool = True, refuse: bool = True) -> str:
    """`data` as text; UnsupportedDocument if it is not valid `encoding` (UnicodeDecodeError with
    `refuse=False`, for the caller to try another) or if its start looks binary."""
    source = _unix_lines(data) if lines_in_bytes else data
    try:
        text = source.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        if not refuse:
            raise
        raise UnsupportedDocument(f"not valid {encoding} text") from None
    # The binary check reads the start as it was, line ends untouched, as it always has.
    sample = text if source is data else data[: 4 * _SAMPLE].decode(encoding, errors="ignore")
    _refuse_binary(sample[:_SAMPLE])
    return text if lines_in_bytes else text.replace("\r\n", "\n").replace("\r", "\n")


def _unix_lines(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in data else data


def _looks_cp1251(sample: bytes) -> bool:
    """Most high bytes are cp1251 letters, mostly lower case (0xE0-0xFF), and the text has spaces.

    KOI8-R uses the same 0xC0-0xFF range with the cases swapped, so ordinary mostly-lower-case prose
    tells the two apart; anything less clear goes to the detector.
    """
    high = [byte for byte in sample if byte >= 0x80]
    if not high:
        return False
    letters = sum(1 for byte in high if byte >= 0xC0 or byte in (0xA8, 0xB8))
    lower = sum(1 for byte in high if byte >= 0xE0 or byte == 0xB8)
    return letters / len(high) > 0.9 and lower / len(high) > 0.6 and b" " in sample


def _refuse_binary(sample: str) -> None:
    if not sample:
        return
    controls = sum(1 for char in sample if ord(char) < 32 and char not in _ALLOWED_CONTROLS)
    if controls / len(sample) > _CONTROL_SHARE_LIMIT:
        raise UnsupportedDocument("binary file (control characters), not text")
