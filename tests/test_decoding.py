"""Unit: bytes become text whatever the encoding, and binary data is refused."""

from __future__ import annotations

import codecs

import pytest

from embedding_pipeline.errors import UnsupportedDocument
from embedding_pipeline.stages.documents import decode_text

RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. Отчёт готов к пятнице."


def test_utf8_with_and_without_bom() -> None:
    assert decode_text(RUSSIAN.encode()) == RUSSIAN
    assert decode_text(codecs.BOM_UTF8 + RUSSIAN.encode()) == RUSSIAN


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(encoding: str) -> None:
    bom = codecs.BOM_UTF16_LE if encoding.endswith("le") else codecs.BOM_UTF16_BE
    assert decode_text(bom + RUSSIAN.encode(encoding)) == RUSSIAN


def test_cp1251_russian_paragraph() -> None:
    assert decode_text((RUSSIAN * 3).encode("cp1251")) == RUSSIAN * 3


def test_short_cp1251_string() -> None:
    assert decode_text("Привет, мир".encode("cp1251")) == "Привет, мир"


def test_koi8r_russian_paragraph() -> None:
    text = (RUSSIAN + " ") * 5
    assert decode_text(text.encode("koi8-r")) == text


def test_newlines_are_normalised() -> None:
    assert decode_text(b"one\r\ntwo\rthree\n") == "one\ntwo\nthree\n"


@pytest.mark.parametrize(
    "data",
    [b"abc\x00def", bytes(range(1, 32)) * 20],
)
def test_binary_is_refused(data: bytes) -> None:
    with pytest.raises(UnsupportedDocument, match="binary"):
        decode_text(data)
