"""Unit: which PDF pages need OCR (embedding_pipeline/stages/documents/text_layer.py), on real
extractions: one-page PDFs written by fpdf2, Pillow or by hand with real fonts (testkit/text_layers.py,
the same builders as bench/text_layer.py), read back with pypdf as the pipeline reads them."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from embedding_pipeline.stages.documents.text_layer import (
    MIN_TEXT_OVER_IMAGE,
    measure,
    needs_ocr,
    page_shows_image,
    usable_text_layer,
)
from testkit.text_layers import (
    SAMPLES,
    SCAN_FOOTER,
    Sample,
    inline_image_scan,
    pillow_pdf,
    read_page,
    sample,
    scanned_image,
)


def _id(found: Sample) -> str:
    return f"{found.group}/{found.name}"


@pytest.mark.parametrize(
    ("group", "name"),
    [
        ("good", "numbers-only"),  # a table of amounts, not one letter
        ("good", "numbers-financial-table"),
        ("good", "title-2-words-ru"),
        ("good", "page-number"),  # "12"
        ("good", "code-json"),
        ("good", "regex-perl-shell"),  # the most symbols of the good pages
        ("good", "ascii-table"),
        ("good", "formulas"),
        ("good", "european"),  # French, German, Hungarian: Latin-1 letters, rightly
        ("good", "word-symbol-bullets-pua"),  # Word's Symbol bullet: a lone U+F0B7 per item
        ("good", "slide-word-bullets-pua"),  # the same on a slide of one-word items
        ("good", "blank-page"),
        ("good-with-image", "searchable-scan"),  # a scan with its OCR's invisible text
        ("good-with-image", "logo-and-title"),  # a logo is not a page image
    ],
)
def test_good_pages_keep_their_text_layer(group: str, name: str) -> None:
    page = read_page(sample(group, name).make())
    assert not needs_ocr(page.text, shows_image=page.shows_image), measure(page.text)
    assert usable_text_layer(page.text)


@pytest.mark.parametrize(
    ("group", "name", "starts"),
    [
        ("fffd", "prose-ru", "\ufffd\ufffd\ufffd"),
        ("missing-font", "prose-ru", "\ufffd\ufffd\ufffd"),
        ("pua", "symbol-style-prose-ru", "\uf013\uf03e\uf034"),
        ("no-tounicode", "prose-ru", "\x01\x02\x03"),  # fpdf2's font, its /ToUnicode stripped
        ("no-tounicode", "title-2-words-ru", "\x01\x02\x03"),
        ("gid", "prose-en", "$QQXDO\x03UHSRUW"),  # "Annual report": glyph ids, letters shifted by 29
        ("custom-codes", "prose-ru", '!"#"$"% "&’(&'),  # symbol soup
        ("custom-codes", "numbers-only", '!"!!'),
        ("glyph-names", "prose-en", "/g4/g5/g5/g6"),
        ("cp1251", "prose-ru", "Ãîäîâîé îò÷¸ò"),  # "Годовой отчёт": mojibake is OCR'd too
        ("cp1251", "title-2-words-ru", "Ãîäîâîé îò÷¸ò"),
    ],
)
def test_garbled_pages_need_ocr(group: str, name: str, starts: str) -> None:
    page = read_page(sample(group, name).make())
    assert page.text.startswith(starts)  # what pypdf makes of such a page: the case is the real one
    assert needs_ocr(page.text, shows_image=False)
    assert not usable_text_layer(page.text)


@pytest.mark.parametrize("name", ["image-and-footer", "strips-and-footer", "form-wrapped-image-and-footer"])
def test_a_scan_with_a_footer_needs_ocr_only_when_the_image_is_known(name: str) -> None:
    page = read_page(sample("scan", name).make())
    assert page.text == SCAN_FOOTER
    assert page.shows_image
    assert needs_ocr(page.text, shows_image=True)
    assert usable_text_layer(page.text)  # the footer alone is good text: the image decides
    assert not needs_ocr(page.text, shows_image=False)


def test_a_page_of_text_over_an_image_keeps_its_text() -> None:
    page = read_page(sample("good-with-image", "photo-and-article").make())
    assert page.shows_image
    assert measure(page.text).chars >= MIN_TEXT_OVER_IMAGE
    assert not needs_ocr(page.text, shows_image=True)


@pytest.mark.parametrize("found", SAMPLES, ids=_id)
def test_every_page_of_the_benchmark_is_decided_as_labelled(found: Sample) -> None:
    page = read_page(found.make())
    assert needs_ocr(page.text, shows_image=page.shows_image) == found.needs_ocr, measure(page.text)


def test_pillow_scan_shows_an_image_and_has_no_text() -> None:
    page = PdfReader(io.BytesIO(pillow_pdf(scanned_image()))).pages[0]
    assert (page.extract_text() or "").strip() == ""
    assert page_shows_image(page)


def test_a_text_page_shows_no_image() -> None:
    page = PdfReader(io.BytesIO(sample("good", "prose-ru").make())).pages[0]
    assert not page_shows_image(page)


def test_an_inline_image_is_seen_in_contents_pypdf_has_inflated() -> None:
    page = PdfReader(io.BytesIO(inline_image_scan(SCAN_FOOTER))).pages[0]
    assert not page_shows_image(page)  # nothing is decoded for it: the contents are still deflated
    page.extract_text()
    assert page_shows_image(page)


@pytest.mark.parametrize(
    ("text", "garbled"),
    [
        ("", False),
        ("\uf0b7 Да", False),  # one Word bullet on a short page
        ("\uf0b7 Москва\n\uf0b7 Казань\n\uf0b7 Сочи", False),
        ("\uf041\uf042\uf043\uf044", True),  # private use in a run: text mapped there
        ("\x01\x02", True),
        ("Отчёт за 2024 год\x02 и выручка выросла на 18% по сравнению с прошлым годом.", False),  # one stray
        ("* * *", False),
        ("(!)", False),
        ("!\"#$ %&'()", True),
        ("Ïðèâåò", True),
        ("Ça va? Été à Paris, très bien.", False),
        ("\ud800\udc00 \ud800", True),  # lone surrogates, which pypdf can produce (surrogatepass)
        ("/g3/g4/g5 /g6/g3", True),
        ("https://example.ru/api/v1/users/42 /usr/lib/x86_64-linux-gnu", False),
    ],
)
def test_the_rule_on_short_texts(text: str, garbled: bool) -> None:
    assert measure(text).garbled is garbled
    assert needs_ocr(text, shows_image=False) is garbled


def test_little_text_over_an_image_needs_ocr_and_enough_does_not() -> None:
    assert needs_ocr("", shows_image=True)
    assert needs_ocr("x" * (MIN_TEXT_OVER_IMAGE - 1), shows_image=True)
    assert not needs_ocr("слово " * MIN_TEXT_OVER_IMAGE, shows_image=True)
    assert not needs_ocr("", shows_image=False)  # a blank page
