"""Unit: crafted documents are refused by the parsers themselves, with the product's permanent errors
and a reason that names the problem (never a bare UnicodeEncodeError, RecursionError or pypdf error
left for the pipeline's catch-all)."""

from __future__ import annotations

import contextlib
import json
import time
from array import array

import pytest

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, PermanentError, UnsupportedDocument
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import SourceRef
from embedding_pipeline.stages.documents import Chunk, ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.stages.vectorize import content_hash
from testkit.adversarial import POISON_DOCX, POISON_PDFS, deeply_nested_json, pdf_lone_surrogate

# --- Lone surrogates: valid JSON, but text that cannot be encoded as UTF-8 -------------------------


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        (
            "r.json",
            b'[{"text": "ok"}, {"text": "bad \\ud800 text"}]',
            "record 1: text holds a lone surrogate",
        ),
        ("r.json", b'{"text": "\\udfff"}', "record 0: text holds a lone surrogate"),
        (
            "r.json",
            b'{"records": [{"text": "ok", "title": "\\ud800"}]}',
            "record 0: field 'title' holds a lone",
        ),
        ("r.json", b'[{"text": "ok", "\\udc00": 1}]', "record 0: a field name holds a lone surrogate"),
        ("r.jsonl", b'{"text": "ok"}\n\n{"text": "\\ud83d"}\n', "line 3: text holds a lone surrogate"),
        ("r.jsonl", b'{"text": "ok", "id": "\\ud83d"}\n', "line 1: field 'id' holds a lone surrogate"),
    ],
)
def test_lone_surrogates_are_refused_naming_where(key: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedDocument, match=f"^{reason}"):
        parse_document(data, key)


def test_a_whole_surrogate_pair_is_text_like_any_other() -> None:
    document = parse_document(b'[{"text": "smile \\ud83d\\ude00", "mood": "\\ud83d\\ude00"}]', "r.json")
    assert document.text == "smile 😀"
    assert document.sections[0].metadata["mood"] == "😀"
    assert content_hash(chunk_document(document, ChunkingSettings())[0].text)


def test_pdf_text_with_a_lone_surrogate_is_a_page_for_ocr() -> None:
    """A font whose ToUnicode map gives half of a UTF-16 pair is broken: the page goes to OCR, and
    the text that could be neither hashed nor written never reaches the document."""
    document = parse_document(pdf_lone_surrogate(), "font.pdf")
    assert (document.text, document.unread_pages) == ("", (1,))


# --- JSON that json.loads chokes on, or that means nothing as records ---------------------------


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("deep.json", deeply_nested_json(), r"nested too deeply \(RecursionError\)"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, r"nested too deeply \(RecursionError\)"),
        ("deep.jsonl", b'{"text": "a"}\n' + b"[" * 100_000 + b"]" * 100_000, r"line 2 nested too deeply"),
        (
            "big.json",
            b'[{"text": "a", "n": ' + b"9" * 5000 + b"}]",
            "invalid JSON in record 0: Exceeds the limit",
        ),
        (
            "big.jsonl",
            b'{"text": "a", "n": ' + b"9" * 5000 + b"}",
            "invalid JSON on line 1: Exceeds the limit",
        ),
        ("broken.json", b'[{"text": "a"},\n {"text": "b"', "invalid JSON at line 2: Expecting ',' delimiter"),
        ("broken.json", b'[{"text": "a"}] [', "invalid JSON at line 1: Extra data"),
        ("broken.json", b'{"records": [{"text": "a}]}', "invalid JSON at line 1: Unterminated string"),
    ],
)
def test_json_that_cannot_be_decoded_is_refused(key: str, data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedDocument, match=reason):
        parse_document(data, key)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            b'{"title": "x", "body": "y"}',
            "JSON object has no string field 'text' and no list under records/data/items",
        ),
        (
            b'{"records": {"text": "x"}}',
            "JSON object has no string field 'text' and no list under records/data/items",
        ),
        (b'[{"title": "x"}]', "^record 0 has no string field 'text'"),
        (b'[{"text": "x"}, ["text"]]', "^record 1 is not an object with a string field 'text'"),
        (b'"just a string"', "JSON must be an object or an array of objects with 'text'"),
    ],
)
def test_json_that_is_not_records_says_what_it_is(data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedDocument, match=reason):
        parse_document(data, "r.json")


def test_a_record_too_complex_to_build_is_refused_before_it_is_built() -> None:
    data = b'[{"text": "a", "extra": [' + b"[]," * 1_000_000 + b"[]]}]"
    started = time.perf_counter()
    with pytest.raises(DocumentTooLarge, match="record 0 holds more than 500000 JSON values"):
        parse_document(data, "r.json")
    assert time.perf_counter() - started < 2  # it stopped scanning at the cap


def test_too_much_metadata_is_refused() -> None:
    fields = ",".join(f'"field_{n}": "{n}"' for n in range(1000))
    data = "\n".join(f'{{"text": "t{n}", {fields}}}' for n in range(600)).encode()  # ~65 MB as metadata
    with pytest.raises(DocumentTooLarge, match="too many fields besides 'text'"):
        parse_document(data, "r.jsonl")


# --- CSV, text -----------------------------------------------------------------------------------


def test_a_csv_row_of_millions_of_fields_is_refused_before_it_is_built() -> None:
    with pytest.raises(DocumentTooLarge, match="CSV row 1 is longer than"):
        parse_document(b"text,id\nhello,1\n" + b"," * 3_000_000 + b"\n", "r.csv")


def test_a_csv_field_over_csvs_own_limit_is_refused() -> None:
    with pytest.raises(UnsupportedDocument, match="invalid CSV: field larger than field limit"):
        parse_document(b"text\n" + b"x" * 200_000 + b"\n", "r.csv")


def test_cp1251_like_bytes_with_an_undefined_byte_go_to_the_detector() -> None:
    text = "Съешь же ещё этих мягких французских булок, да выпей чаю. " * 3
    data = text.encode("cp1251") + b"\x98"  # 0x98 is the one byte cp1251 leaves undefined
    assert "булок" in parse_document(data, "legacy.txt").text  # was a bare UnicodeDecodeError


@pytest.mark.parametrize(
    "shape",
    ["<a ", "<!--", "</", "<?", "<a", "<!", "<p x='", '<p x="', "<script>", "&#", "<![CDATA["],
)
def test_html_that_made_the_stdlib_parser_quadratic_is_parsed_in_linear_time(shape: str) -> None:
    # 200 KB: html.parser took 33 s on 50 KB of "<a " and grew with the square of the size
    data = (shape * (200_000 // len(shape))).encode()
    started = time.perf_counter()
    with contextlib.suppress(EmptyDocument):  # an unclosed construct swallows the rest, as in a browser
        chunk_document(parse_document(data, "crafted.html"), ChunkingSettings())
    assert time.perf_counter() - started < 2


# --- PDF: everything pypdf raises is ours, with its name -----------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("huge_length", r"broken PDF \(LimitReachedError: Declared stream length"),
        ("flate_bomb", r"broken PDF \(LimitReachedError: Limit reached while decompressing"),
        ("nested_arrays", r"broken PDF \(PdfReadError"),  # pypdf turns its own RecursionError into this
        ("nested_content_arrays", r"nested too deeply \(RecursionError\)"),
        ("nested_pages", r"broken PDF \(LimitReachedError: Maximum page tree depth"),
        (
            "xref_stream_short_widths",
            r"broken PDF \(PdfReadError: Trailer cannot be read",
        ),  # an AssertionError inside
        ("inline_image_with_operands", r"broken PDF \(AssertionError\)"),
        ("self_referencing_pages", r"broken PDF \(PdfReadError: Detected cyclic page references"),
    ],
)
def test_crafted_pdfs_are_refused_naming_the_error(name: str, reason: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsupportedDocument, match=reason):
        parse_document(POISON_PDFS[name](), f"{name}.pdf")
    assert time.perf_counter() - started < 5


def test_a_pdf_with_a_broken_xref_table_is_recovered() -> None:
    assert parse_document(POISON_PDFS["broken_xref"](), "recovered.pdf").text == "broken xref"


def test_a_pdf_declaring_too_many_pages_is_refused_before_they_are_read() -> None:
    data = POISON_PDFS["self_referencing_pages"]().replace(
        b"/Kids [2 0 R] /Count 1", b"/Kids [] /Count 99999"
    )
    with pytest.raises(DocumentTooLarge, match="PDF of 99999 pages: at most 10000 are read"):
        parse_document(data, "many.pdf")


# --- DOCX ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error", "reason"),
    [
        ("entities", UnsupportedDocument, "DOCX body declares a DTD"),
        ("unknown_compression", UnsupportedDocument, r"broken DOCX \(NotImplementedError"),
        ("encrypted_member", UnsupportedDocument, r"broken DOCX \(RuntimeError: .* is encrypted"),
        ("truncated", UnsupportedDocument, r"broken DOCX \(BadZipFile\)"),
        ("unclosed_xml", UnsupportedDocument, r"broken DOCX \(invalid XML: no element found"),
        ("undefined_entity", UnsupportedDocument, r"broken DOCX \(invalid XML: undefined entity"),
        ("surrogate_character_reference", UnsupportedDocument, "reference to invalid character number"),
        ("no_body", EmptyDocument, "no text"),
    ],
)
def test_crafted_docx_files_are_refused(name: str, error: type[PermanentError], reason: str) -> None:
    with pytest.raises(error, match=reason):
        parse_document(POISON_DOCX[name](), f"{name}.docx")


def test_a_heading_style_with_thousands_of_digits_is_just_a_style() -> None:
    from tests.test_formats import _docx  # noqa: PLC0415

    document = parse_document(_docx([("Heading" + "9" * 5000, "Title text")]), "styles.docx")
    assert document.text == "Title text"


def test_json_documents_that_parse_are_unchanged() -> None:
    records = [{"id": n, "text": f"record {n}", "tags": ["a"], "score": 0.5} for n in range(3)]
    for payload in (records, {"data": records}, {"items": records, "data": "not a list"}):
        document = parse_document(json.dumps(payload).encode(), "r.json")
        assert document.text == "record 0\n\nrecord 1\n\nrecord 2"
        assert [s.metadata for s in document.sections][1] == {"id": 1, "score": 0.5, "record": 1}


def test_non_finite_numbers_in_record_fields_are_kept_as_text_never_written_bare() -> None:
    data = b'{"text": "a", "score": NaN}\n{"text": "b", "score": -Infinity}\n'
    document = parse_document(data, "incoming/scores.jsonl")
    assert [section.metadata["score"] for section in document.sections] == ["nan", "-inf"]
    chunk = Chunk("a", 0, 1, {"score": float("nan")})
    source = SourceRef(bucket="b", key="incoming/scores.jsonl")
    with pytest.raises(ValueError, match="JSON compliant"):
        record_line(
            record_id="r",
            number=0,
            chunk=chunk,
            text_hash="h",
            vector=array("d", [0.0]),
            tokens=1,
            model="m",
            source=source,
        )
