"""Unit: each format's text extraction, sections and refusals."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import parse_document
from embedding_pipeline.stages.documents.formats import SNIFF_BYTES, refusal, supported_formats


def test_plain_text_and_unknown_extensions() -> None:
    for key in ("notes.txt", "README", "build.log", "strange.xyz"):
        document = parse_document(b"hello\n\nworld", key)
        assert document.text == "hello\n\nworld"
        assert document.format == "text"
        assert len(document.sections) == 1


def test_markdown_extension_is_case_insensitive() -> None:
    assert parse_document(b"# Title\n\nBody", "docs/GUIDE.MD").format == "markdown"


def test_html_drops_scripts_keeps_headings_and_entities() -> None:
    html = (
        b"<html><head><title>T</title><style>p{}</style></head><body>"
        b"<h2>Caf&eacute; rules</h2><p>Tea &amp; coffee\n   are   free.</p>"
        b"<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
    )
    document = parse_document(html, "page.html")
    assert document.format == "html"
    assert document.text == "## Café rules\n\nTea & coffee are free.\n\n- one\n- two"


def test_json_array_records_become_sections_with_metadata() -> None:
    data = json.dumps([{"id": "a1", "title": "First", "text": "Alpha text"}, {"id": "b2", "text": "Beta"}])
    document = parse_document(data.encode(), "records.json")
    assert document.text == "Alpha text\n\nBeta"
    first, second = document.sections
    assert document.text[first.start : first.end] == "Alpha text"
    assert first.metadata == {"id": "a1", "title": "First", "record": 0}
    assert second.metadata == {"id": "b2", "record": 1}


@pytest.mark.parametrize(
    "payload",
    [{"text": "Only one"}, {"records": [{"text": "Only one"}]}, {"items": [{"text": "Only one"}]}],
)
def test_json_object_shapes(payload: object) -> None:
    assert parse_document(json.dumps(payload).encode(), "one.json").text == "Only one"


def test_custom_text_field() -> None:
    document = parse_document(b'[{"body": "custom"}]', "x.json", text_field="body")
    assert document.text == "custom"


def test_json_without_the_text_field_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="'text'"):
        parse_document(b'[{"title": "no body"}]', "x.json")


def test_jsonl_records_and_a_bad_line() -> None:
    document = parse_document(b'{"text": "one"}\n\n{"text": "two", "n": 2}\n', "log.jsonl")
    assert [document.text[s.start : s.end] for s in document.sections] == ["one", "two"]
    assert document.sections[1].metadata == {"n": 2, "record": 1}
    with pytest.raises(UnsupportedDocument, match="line 2"):
        parse_document(b'{"text": "one"}\n{broken\n', "log.jsonl")


def test_csv_with_a_text_column_has_one_section_per_row() -> None:
    document = parse_document("id,text\n7,первая строка\n8,вторая\n".encode(), "rows.csv")
    assert [document.text[s.start : s.end] for s in document.sections] == ["первая строка", "вторая"]
    assert document.sections[0].metadata == {"id": "7", "row": 0}


def test_csv_without_a_text_column_renders_rows() -> None:
    document = parse_document(b"name,city\nAnna,Moscow\nBoris,Kazan\n", "people.csv")
    assert document.text == "name: Anna\ncity: Moscow\n\nname: Boris\ncity: Kazan"


def test_tsv() -> None:
    assert parse_document(b"text\tlang\nhola\tes\n", "t.tsv").sections[0].metadata == {"lang": "es", "row": 0}


def _docx(paragraphs: list[tuple[str | None, str]]) -> bytes:
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"

    def paragraph(style: str | None, text: str) -> str:
        properties = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        return f"<w:p>{properties}<w:r><w:t>{text}</w:t></w:r></w:p>"

    body = "".join(paragraph(style, text) for style, text in paragraphs)
    xml = f'<?xml version="1.0"?><w:document xmlns:w="{ns}"><w:body>{body}</w:body></w:document>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", xml)
    return buffer.getvalue()


def test_docx_paragraphs_and_headings() -> None:
    data = _docx([("Title", "Отчёт"), ("Heading2", "Итоги"), (None, "Выручка выросла."), (None, "")])
    document = parse_document(data, "report.docx")
    assert document.format == "docx"
    assert document.text == "# Отчёт\n\n## Итоги\n\nВыручка выросла."


def test_broken_docx_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="DOCX"):
        parse_document(b"PK\x03\x04 not really a zip", "broken.docx")


def _pdf(pages: list[str]) -> bytes:
    """A minimal PDF with one text line per page, built by hand so the test needs no PDF writer."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(f"<< /Length {len(content)} >>\nstream\n{content.decode()}\nendstream")
        content_id = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n{body}\nendobj\n".encode())
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def test_pdf_pages_become_sections() -> None:
    document = parse_document(_pdf(["First page text", "Second page text"]), "paper.pdf")
    assert document.format == "pdf"
    assert [s.metadata for s in document.sections] == [{"page": 1}, {"page": 2}]
    assert [document.text[s.start : s.end] for s in document.sections] == [
        "First page text",
        "Second page text",
    ]


def test_pdf_without_text_is_empty() -> None:
    """No text and no image: nothing for OCR either."""
    with pytest.raises(EmptyDocument, match="PDF has no text"):
        parse_document(_pdf([""]), "scan.pdf")


def test_broken_pdf_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="PDF"):
        parse_document(b"%PDF-1.4\nthis is not a pdf", "broken.pdf")


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"\x89PNG\r\n\x1a\n....", "PNG"), (b"\x1f\x8b\x08....", "gzip"), (b"\x7fELF....", "executable")],
)
def test_binary_with_a_text_extension_is_refused(data: bytes, kind: str) -> None:
    with pytest.raises(UnsupportedDocument, match=kind):
        parse_document(data, "looks-like.txt")


@pytest.mark.parametrize("key", ["empty.txt", "empty.md", "blank.html"])
def test_whitespace_only_is_empty(key: str) -> None:
    with pytest.raises(EmptyDocument):
        parse_document(b" \n\t\n ", key)


@pytest.mark.parametrize(
    ("key", "data", "named"),
    [
        ("photo.webp", b"RIFFrest", ".webp (WebP image"),
        ("book.XLS", b"\xd0\xcf\x11\xe0rest", ".xls (Excel 97-2003 workbook"),
        ("bundle.zip", b"PK\x03\x04rest", ".zip (ZIP archive"),
        (
            "scan.tiff",
            b"II*\x00rest",
            ".tiff (TIFF image: Vision OCR reads JPEG, PNG and PDF, convert it (magick scan.tif scan.pdf)",
        ),
        ("table.xls", b"a,b\n1,2\n", ".xls (Excel 97-2003 workbook"),  # refused by name, whatever the bytes
    ],
)
def test_a_known_format_without_a_parser_is_named(key: str, data: bytes, named: str) -> None:
    with pytest.raises(UnsupportedDocument) as refused:
        parse_document(data, key)
    reason = str(refused.value)
    assert reason.startswith(f"unsupported format {named}; supported: ")
    listed = reason.split("supported: ")[1]
    assert all(f".{name}" in listed for name in supported_formats())
    assert refusal(key, data[:SNIFF_BYTES]) == reason  # what `embedpipe embed` checks first


def test_binary_bytes_under_a_text_name_are_still_refused() -> None:
    with pytest.raises(UnsupportedDocument, match=r"^binary file \(ZIP archive\) with a text extension$"):
        parse_document(b"PK\x03\x04rest", "notes.txt")
    assert refusal("notes.md", b"# Notes") is None
    assert refusal("paper.pdf", b"PK\x03\x04") is None  # a parser of its own judges it


def test_the_supported_formats_come_from_the_parsers() -> None:
    supported = supported_formats()
    assert {"txt", "md", "pdf", "docx", "csv", "json", "html"} <= set(supported)
    assert {"pptx", "odp", "odt", "epub", "xlsx", "ods", "rtf"} <= set(supported)
    assert {"png", "jpg", "jpeg"} <= set(supported)  # read by Vision OCR
    assert not {"ppt", "doc", "xls", "xlsb", "tiff", "gif"} & set(supported)
