"""Unit: EPUB chapters in spine order through the HTML extractor, titles from the table of contents,
`chapter` and `href` in the metadata; crafted books refused before their chapters are read."""

from __future__ import annotations

import time

import pytest

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.stages.documents.epub import MAX_CHAPTERS
from testkit.packages import CONTAINER, chapter, epub, package, zero_filled

NCX = (
    '<?xml version="1.0"?><!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" '
    '"http://www.daisy.org/z3986/2005/ncx-2005-1.dtd"><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/">'
    '<navMap><navPoint><navLabel><text>Second chapter</text></navLabel><content src="b.xhtml#start"/>'
    "</navPoint></navMap></ncx>"
)


def test_chapters_follow_the_spine_with_titles_from_the_nav() -> None:
    book = epub(
        [("a.xhtml", chapter("Chapter One", ["Alpha."])), ("b.xhtml", chapter(None, ["Beta & more."]))],
        spine=["b.xhtml", "a.xhtml"],
        toc={"b.xhtml#start": "Chapter Two", "a.xhtml": "Ignored: the chapter has its own heading"},
    )
    document = parse_document(book, "book.epub")
    assert document.format == "epub"
    assert document.text == "# Chapter Two\n\nBeta & more.\n\n# Chapter One\n\nAlpha."
    assert [s.metadata for s in document.sections] == [
        {"chapter": 1, "href": "OEBPS/b.xhtml"},
        {"chapter": 2, "href": "OEBPS/a.xhtml"},
    ]


def test_an_epub2_ncx_with_a_doctype_gives_titles() -> None:
    opf = (
        '<package xmlns="http://www.idpf.org/2007/opf" version="2.0"><manifest>'
        '<item id="b" href="b.xhtml" media-type="application/xhtml+xml"/>'
        '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        '<item id="cover" href="cover.jpg" media-type="image/jpeg"/></manifest>'
        '<spine toc="ncx"><itemref idref="cover"/><itemref idref="b" linear="no"/></spine></package>'
    )
    book = epub([("b.xhtml", chapter(None, ["Beta."])), ("toc.ncx", NCX)], opf=opf)
    document = parse_document(book, "old.epub")
    assert document.text == "# Second chapter\n\nBeta."
    assert document.sections[0].metadata == {"chapter": 1, "href": "OEBPS/b.xhtml"}


def test_every_chunk_says_its_chapter() -> None:
    book = epub([(f"c{n}.xhtml", chapter(f"Part {n}", ["word " * 500])) for n in range(3)])
    chunks = chunk_document(parse_document(book, "long.epub"), ChunkingSettings(max_tokens=200))
    assert {chunk.metadata["chapter"] for chunk in chunks} == {1, 2, 3}


def test_a_spine_naming_a_file_the_book_lacks_is_refused() -> None:
    book = epub([("a.xhtml", chapter("A", ["a"]))], spine=["a.xhtml", "gone.xhtml"])
    with pytest.raises(UnsupportedDocument, match=r"the spine names OEBPS/gone\.xhtml, which the book lacks"):
        parse_document(book, "holes.epub")


def test_a_spine_idref_missing_from_the_manifest_is_refused() -> None:
    opf = (
        '<package xmlns="http://www.idpf.org/2007/opf"><manifest/>'
        '<spine><itemref idref="x"/></spine></package>'
    )
    with pytest.raises(UnsupportedDocument, match="spine item 'x' is not in the manifest"):
        parse_document(epub([], opf=opf), "bad.epub")


def test_a_huge_chapter_is_refused_before_it_is_read() -> None:
    book = epub([("huge.xhtml", zero_filled(70_000_000))])
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge, match="EPUB declares more than 64 MiB"):
        parse_document(book, "huge.epub")
    assert time.perf_counter() - started < 1


def test_one_chapter_named_again_and_again_counts_every_time() -> None:
    book = epub([("a.xhtml", chapter("A", ["x" * 2_000_000]))], spine=["a.xhtml"] * 40)
    with pytest.raises(DocumentTooLarge, match="EPUB declares more than 64 MiB"):
        parse_document(book, "loop.epub")


def test_more_spine_items_than_the_cap_are_refused() -> None:
    book = epub([("a.xhtml", chapter("A", ["a"]))], spine=["a.xhtml"] * (MAX_CHAPTERS + 1))
    with pytest.raises(DocumentTooLarge, match=f"EPUB of {MAX_CHAPTERS + 1} spine items"):
        parse_document(book, "long.epub")


def test_an_opf_with_entities_is_refused() -> None:
    opf = '<!DOCTYPE package [<!ENTITY a "aaaa">]><package xmlns="http://www.idpf.org/2007/opf"/>'
    with pytest.raises(UnsupportedDocument, match="EPUB XML declares a DTD"):
        parse_document(epub([], opf=opf), "entities.epub")


def test_drm_encrypted_chapters_are_refused() -> None:
    book = epub([("a.xhtml", chapter("A", ["a"]))])
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
        '<enc:CipherReference URI="OEBPS/a.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    import io  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist()]
    with pytest.raises(UnsupportedDocument, match="DRM"):
        parse_document(package([*members, ("META-INF/encryption.xml", encryption)]), "drm.epub")


def test_a_book_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="EPUB has no text"):
        parse_document(epub([("a.xhtml", chapter(None, [" "]))]), "blank.epub")


def test_a_container_without_a_rootfile_is_refused() -> None:
    data = package(
        [
            ("mimetype", "application/epub+zip"),
            ("META-INF/container.xml", CONTAINER.replace("rootfile ", "x ")),
        ]
    )
    with pytest.raises(UnsupportedDocument, match="names no package document"):
        parse_document(data, "bare.epub")
