"""Unit: RTF's text in its own code pages, and crafted RTF in linear time."""

from __future__ import annotations

import time

import pytest

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import parse_document
from embedding_pipeline.stages.documents.formats import refusal

# As WordPad writes Russian: \ansicpg1251, a font of charset 204, the text as \'xx escapes.
CP1251 = rb"""{\rtf1\ansi\ansicpg1251\deff0\nouicompat
{\fonttbl{\f0\fnil\fcharset204 Calibri;}{\f1\fnil\fcharset0 Times New Roman;}}
{\colortbl ;\red255\green0\blue0;}
{\*\generator Riched20 10.0.19041}\viewkind4\uc1
\pard\sa200\sl276\slmult1\f0\fs22\lang1049 \'cf\'f0\'e8\'e2\'e5\'f2, \'ec\'e8\'f0!\par
\f1 Caf\u233?, \u55357\u56832? and \u-3913? \'e9t\'e9\line next\tab cell\par
{\field{\*\fldinst HYPERLINK "http://example.com"}{\fldrslt link text}}\par
{\header header text\par}{\footnote a footnote}{\pict\binN}literal \{braces\}\par
}
trailing bytes after the document's group"""


def test_code_page_escapes_and_unicode_escapes_decode() -> None:
    document = parse_document(CP1251.replace(rb"\binN", rb"\bin4 }}}}"), "letter.rtf")
    assert document.format == "rtf"
    paragraphs = document.text.split("\n\n")
    assert paragraphs[0] == "Привет, мир!"
    # \f1 is charset 0, "the document's code page" (1251): \'e9 is "й" there
    assert paragraphs[1] == "Café, 😀 and \uf0b7 йtй\nnext\tcell"
    assert paragraphs[2] == "link text"  # a field's result, not its instruction
    assert paragraphs[3] == "literal {braces}"  # no header, footnote, picture data (\bin's braces too)


def test_a_font_of_another_charset_decodes_in_its_code_page() -> None:
    data = rb"{\rtf1\ansi{\fonttbl{\f0 Arial;}{\f2\fcharset161 Greek;}}\f2 \'e1\'e2\f0 \'e1}"
    assert parse_document(data, "g.rtf").text == "αβá"


def test_lone_surrogates_and_undefined_bytes_become_replacement_characters() -> None:
    data = rb"{\rtf1\ansi \u55357?x\u56832?\'81}"
    assert parse_document(data, "s.rtf").text == "\ufffdx\ufffd\ufffd"


def test_only_control_words_is_empty_in_linear_time() -> None:
    seconds = []
    for size in (250_000, 1_000_000):
        data = b"{\\rtf1" + b"\\b\\i0\\fs24 " * (size // 12) + b"}"
        started = time.perf_counter()
        with pytest.raises(EmptyDocument, match="RTF has no text"):
            parse_document(data, "controls.rtf")
        seconds.append(time.perf_counter() - started)
    assert seconds[1] < 6 * seconds[0] + 0.05


def test_deep_nesting_and_non_rtf_are_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="nested over 1000 deep"):
        parse_document(b"{\\rtf1" + b"{" * 100_000 + b"x", "deep.rtf")
    # nesting inside a skipped destination costs nothing and is allowed
    assert parse_document(b"{\\rtf1{\\*\\x" + b"{" * 5000 + b"}" * 5001 + b"ok}", "d.rtf").text == "ok"
    with pytest.raises(UnsupportedDocument, match="not an RTF document"):
        parse_document(b"hello", "plain.rtf")
    assert refusal("letter.rtf", b"{\\rtf1") is None
