"""Unit: OpenDocument text (headings, paragraphs, lists, tables) and presentations (pages as slides),
and crafted packages refused or read within bounds. Files are built in code (testkit/packages.py)."""

from __future__ import annotations

import time

import pytest

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import parse_document
from embedding_pipeline.stages.documents.model import MAX_TEXT_CHARS
from testkit.packages import ODF_NS, ODP_MIME, ODT_MIME, odf, odt_deeply_nested, package, zero_filled

TEXT = (
    '<office:text><text:h text:outline-level="2">Итоги</text:h>'
    '<text:p>Выручка<text:s text:c="2"/>выросла<text:note><text:note-body><text:p>сноска</text:p>'
    "</text:note-body></text:note>.<text:line-break/>Вторая строка</text:p>"
    "<text:list><text:list-item><text:p>one</text:p></text:list-item><text:list-item><text:p>two</text:p>"
    "<text:list><text:list-item><text:p>two.a</text:p></text:list-item></text:list></text:list-item></text:list>"
    "<table:table><table:table-row><table:table-cell><text:p>Region</text:p></table:table-cell>"
    "<table:table-cell><text:p>Sales</text:p></table:table-cell></table:table-row>"
    "<table:table-row><table:table-cell><text:p>North</text:p></table:table-cell>"
    "<table:table-cell><text:p>12</text:p></table:table-cell></table:table-row></table:table>"
    "<office:annotation><text:p>a comment</text:p></office:annotation><text:p>End.</text:p></office:text>"
)


def test_odt_headings_paragraphs_lists_and_tables() -> None:
    document = parse_document(odf(ODT_MIME, TEXT), "report.odt")
    assert document.format == "odt"
    assert document.text == (
        "## Итоги\n\nВыручка  выросла.\nВторая строка\n\n- one\n- two\n  - two.a\n\n"
        "Region | Sales\nNorth | 12\n\nEnd."
    )


PAGES = (
    "<office:presentation>"
    '<draw:page draw:name="p1"><draw:frame presentation:class="title"><draw:text-box><text:p>Plan</text:p>'
    '</draw:text-box></draw:frame><draw:frame presentation:class="outline"><draw:text-box><text:list>'
    "<text:list-item><text:p>Goal one</text:p></text:list-item><text:list-item><text:p>Goal two</text:p>"
    '</text:list-item></text:list></draw:text-box></draw:frame><draw:frame presentation:class="page-number">'
    "<draw:text-box><text:p>1</text:p></draw:text-box></draw:frame><presentation:notes><draw:page-thumbnail/>"
    '<draw:frame presentation:class="notes"><draw:text-box><text:p>Say it slowly</text:p></draw:text-box>'
    "</draw:frame></presentation:notes></draw:page>"
    '<draw:page draw:style-name="dp2"><draw:frame><draw:text-box>'
    "<text:p>Backup</text:p></draw:text-box></draw:frame></draw:page><draw:page/>"
    "<draw:page><draw:frame><table:table><table:table-row><table:table-cell><text:p>a</text:p>"
    "</table:table-cell><table:table-cell><text:p>b</text:p></table:table-cell></table:table-row></table:table>"
    "</draw:frame></draw:page></office:presentation>"
)
HIDDEN = (
    '<style:style style:name="dp2" style:family="drawing-page">'
    '<style:drawing-page-properties presentation:visibility="hidden"/></style:style>'
)


def test_odp_pages_are_slides_with_title_frames_and_notes() -> None:
    document = parse_document(odf(ODP_MIME, PAGES, HIDDEN), "talk.odp")
    assert document.format == "odp"
    assert [document.text[s.start : s.end] for s in document.sections] == [
        "# Plan\n\n- Goal one\n- Goal two\n\nNotes:\nSay it slowly",
        "Backup",
        "a | b",
    ]
    assert [s.metadata for s in document.sections] == [
        {"slide": 1},
        {"slide": 2, "hidden": True},
        {"slide": 4},
    ]


def test_an_odt_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="ODT has no text"):
        parse_document(odf(ODT_MIME, "<office:text><text:p> </text:p></office:text>"), "blank.odt")


def test_deeply_nested_xml_is_refused_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(UnsupportedDocument, match="ODT XML is nested over 512 elements deep"):
        parse_document(odt_deeply_nested(100_000), "deep.odt")
    assert time.perf_counter() - started < 1


def test_nesting_within_the_cap_is_read() -> None:
    assert parse_document(odt_deeply_nested(400), "deep.odt").text == "deep"


def test_a_space_count_cannot_blow_up_the_text() -> None:
    spaces = '<text:s text:c="99999"/>' * 10 + '<text:s text:c="999999999999"/>'
    document = parse_document(
        odf(ODT_MIME, f"<office:text><text:p>a{spaces}b</text:p></office:text>"), "s.odt"
    )
    assert len(document.text) == 2 + 10 * 100 + 1


def test_text_over_the_character_cap_is_refused() -> None:
    paragraph = "<text:p>" + '<text:s text:c="100"/>' * 10_000 + "x</text:p>"

    def write(stream: object) -> None:
        head = f"<office:document-content {ODF_NS}><office:body><office:text>".encode()
        stream.write(head)  # type: ignore[attr-defined]
        for _ in range(MAX_TEXT_CHARS // 1_000_000 + 2):
            stream.write(paragraph.encode())  # type: ignore[attr-defined]
        stream.write(b"</office:text></office:body></office:document-content>")  # type: ignore[attr-defined]

    with pytest.raises(DocumentTooLarge, match="over 33554432 characters"):
        parse_document(odf(ODT_MIME, write), "spaces.odt")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (
            '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            f"<office:document-content {ODF_NS}/>",
            "ODT XML declares a DTD",
        ),
        (
            f"<office:document-content {ODF_NS}><office:body>&b;</office:body></office:document-content>",
            "undefined entity",
        ),
        (zero_filled(70_000_000), "ODT declares more than 64 MiB"),
    ],
)
def test_crafted_content_is_refused(content: object, reason: str) -> None:
    data = package([("mimetype", ODT_MIME), ("content.xml", content)], stored_first="mimetype")  # type: ignore[list-item]
    with pytest.raises((UnsupportedDocument, DocumentTooLarge), match=reason):
        parse_document(data, "crafted.odt")


def test_an_encrypted_odt_is_refused() -> None:
    manifest = (
        '<manifest:manifest><manifest:encryption-data manifest:checksum-type="SHA1"/></manifest:manifest>'
    )
    data = package(
        [("mimetype", ODT_MIME), ("META-INF/manifest.xml", manifest), ("content.xml", b"\x8f\x01")]
    )
    with pytest.raises(UnsupportedDocument, match="encrypted ODT"):
        parse_document(data, "secret.odt")


def test_a_package_without_content_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match=r"broken ODP: content\.xml is missing"):
        parse_document(package([("mimetype", ODP_MIME)]), "empty.odp")
