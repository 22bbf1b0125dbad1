"""Unit, and one functional: PPTX decks slide by slide (title, shapes in stored order, tables, notes,
`slide` in every chunk's metadata), the legacy binaries refused with how to convert them, and crafted
decks refused or read within bounds. Decks are built in code (testkit/packages.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devstack.events import storage_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.stages.documents.formats import SNIFF_BYTES, refusal, supported_formats
from embedding_pipeline.stages.documents.slides import MAX_SLIDES
from embedding_pipeline.stages.documents.zipsafe import MAX_MEMBERS, MAX_XML_BYTES
from handlers import dispatch
from testkit.packages import Slide, package, pptx, pptx_many_slides, zero_filled
from tests.support import RuntimeFactory, context, read_json

DECK = [
    Slide(
        "Quarterly plan",
        body=[["Grow revenue", "Hire two engineers"], ["Risks are low"]],
        table=[["Region", "Sales"], ["North", "12"]],
        notes=["Mention the new office."],
        footer="1",
    ),
    Slide("Backup", body=[["Old numbers"]], hidden=True),
    Slide(),  # no text: no section, but it keeps its number
    Slide(body=[["Untitled slide text"]]),
]


def test_each_slide_is_a_section_with_its_number() -> None:
    document = parse_document(pptx(DECK), "deck.pptx")
    assert document.format == "pptx"
    texts = [document.text[s.start : s.end] for s in document.sections]
    assert texts == [
        "# Quarterly plan\n\nGrow revenue\nHire two engineers\n\nRisks are low\n\n"
        "Region | Sales\nNorth | 12\n\nNotes:\nMention the new office.",
        "# Backup\n\nOld numbers",
        "Untitled slide text",
    ]
    assert [s.metadata for s in document.sections] == [
        {"slide": 1},
        {"slide": 2, "hidden": True},
        {"slide": 4},
    ]


def test_slides_follow_the_presentation_order_not_the_file_names() -> None:
    deck = pptx([Slide("First file"), Slide("Second file")], order=[1, 0])
    document = parse_document(deck, "deck.pptx")
    assert document.text == "# Second file\n\n# First file"
    assert [s.metadata["slide"] for s in document.sections] == [1, 2]


def test_every_chunk_says_its_slide() -> None:
    deck = pptx([Slide(f"Slide {n}", body=[["word " * 400]]) for n in range(3)])
    chunks = chunk_document(parse_document(deck, "deck.pptx"), ChunkingSettings(max_tokens=200))
    assert len(chunks) > 3
    assert {chunk.metadata["slide"] for chunk in chunks} == {1, 2, 3}


def test_a_deck_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="PPTX has no text"):
        parse_document(pptx([Slide(), Slide(footer="2")]), "blank.pptx")


@pytest.mark.parametrize(
    ("key", "convert"),
    [
        ("memo.doc", "convert it to .docx (soffice --headless --convert-to docx)"),
        ("talk.PPT", "convert it to .pptx (soffice --headless --convert-to pptx)"),
    ],
)
def test_legacy_binaries_are_refused_with_how_to_convert_them(key: str, convert: str) -> None:
    head = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the OLE2 compound file signature
    with pytest.raises(UnsupportedDocument, match="97-2003") as refused:
        parse_document(head + b"\0" * 100, key)
    assert convert in str(refused.value)
    assert refusal(key, head[:SNIFF_BYTES]) == str(refused.value)


@pytest.mark.parametrize("key", ["deck.pptx", "slides.odp", "letter.odt", "book.epub"])
def test_the_new_formats_are_supported_and_pass_the_upload_check(key: str) -> None:
    assert key.rsplit(".", 1)[1] in supported_formats()
    assert refusal(key, b"PK\x03\x04\x14\x00\x00\x00") is None  # `embedpipe embed` uploads them


def test_ten_thousand_slides_are_read_in_linear_time() -> None:
    small, large = pptx_many_slides(MAX_SLIDES // 4), pptx_many_slides(MAX_SLIDES)
    seconds = []
    for deck in (small, large):
        started = time.perf_counter()
        document = parse_document(deck, "big.pptx")
        seconds.append(time.perf_counter() - started)
    assert len(document.sections) == MAX_SLIDES
    assert document.sections[-1].metadata == {"slide": MAX_SLIDES}
    assert seconds[1] < 10
    assert seconds[1] / seconds[0] < 8  # 4 times the slides; quadratic would be 16


def test_more_slides_than_the_cap_are_refused_before_any_is_read() -> None:
    ids = "".join(f'<p:sldId id="{n}" r:id="rId1"/>' for n in range(MAX_SLIDES + 1))
    deck = _with_members(
        pptx([Slide("One")]),
        "ppt/presentation.xml",
        f'<p:presentation xmlns:p="{_P}" xmlns:r="{_R}"><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>',
    )
    with pytest.raises(DocumentTooLarge, match=f"PPTX of {MAX_SLIDES + 1} slides"):
        parse_document(deck, "many.pptx")


def test_a_zip_bomb_is_refused_by_its_declared_size() -> None:
    bomb = _with_members(pptx([Slide("One")]), "ppt/slides/slide1.xml", zero_filled(MAX_XML_BYTES + 2**20))
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge, match="PPTX declares more than 64 MiB of XML"):
        parse_document(bomb, "bomb.pptx")
    assert time.perf_counter() - started < 1  # refused before inflating anything


def test_too_many_members_are_refused_before_the_directory_is_read() -> None:
    members = [(f"ppt/media/{n}.txt", b"") for n in range(MAX_MEMBERS + 1)]
    with pytest.raises(DocumentTooLarge, match=f"PPTX of {MAX_MEMBERS + 1} ZIP members"):
        parse_document(package(members), "members.pptx")


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        ('<!DOCTYPE p:sld [<!ENTITY a "aaaa">]><p:sld/>', "declares a DTD"),
        ("<!DOCTYPE p:sld><p:sld/>", "declares a DTD"),
        ("<p:sld>&lol;</p:sld>", r"invalid XML: undefined entity"),
        ("<p:sld>" + "<a:p>" * 1000 + "</a:p>" * 1000 + "</p:sld>", "nested over 512 elements"),
        ("<p:sld", r"broken PPTX \(invalid XML"),
    ],
)
def test_crafted_slide_xml_is_refused(xml: str, reason: str) -> None:
    namespaced = (
        xml.replace("<p:sld", f'<p:sld xmlns:p="{_P}" xmlns:a="{_A}"', 1) if "DOCTYPE" not in xml else xml
    )
    deck = _with_members(pptx([Slide("One")]), "ppt/slides/slide1.xml", namespaced)
    with pytest.raises(UnsupportedDocument, match=reason):
        parse_document(deck, "crafted.pptx")


def test_a_missing_presentation_part_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match=r"broken PPTX: ppt/presentation\.xml is missing"):
        parse_document(package([("[Content_Types].xml", "<Types/>")]), "bare.pptx")


def test_a_slide_missing_from_the_archive_is_refused() -> None:
    deck = _with_members(pptx([Slide("One")]), "ppt/slides/slide1.xml", None)
    with pytest.raises(UnsupportedDocument, match=r"ppt/slides/slide1\.xml is missing"):
        parse_document(deck, "holes.pptx")


async def test_a_deck_through_the_pipeline_has_the_slide_in_every_record(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    runtime = make_runtime()
    await storage.put(s3_bucket, "incoming/deck.pptx", pptx(DECK))
    reply: dict[str, Any] = await dispatch(
        runtime,
        storage_event("ObjectCreate", s3_bucket, "incoming/deck.pptx"),
        context(),
    )
    assert reply["documents"][0]["outcome"] == "embedded"
    records = await read_json(storage, s3_bucket, "embeddings/incoming/deck.pptx.jsonl")
    assert [record["metadata"].get("slide") for record in records] == [1, 2, 4]
    assert "Mention the new office." in records[0]["text"]


_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _with_members(data: bytes, name: str, content: Any) -> bytes:
    """`data` (a ZIP) with member `name` replaced by `content` (text, bytes or a writer), or dropped."""
    import io  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(i.filename, archive.read(i)) for i in archive.infolist() if i.filename != name]
    return package([*members, *([(name, content)] if content is not None else [])])
