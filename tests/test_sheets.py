"""Unit: spreadsheets (XLSX, XLSM, ODS) as rows of their visible sheets, and the bombs refused first."""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
import time
import zipfile

import pytest

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents import ChunkingSettings, Limits, chunk_document, parse_document
from embedding_pipeline.stages.documents.formats import SNIFF_BYTES, refusal
from testkit.workbooks import Cell, Formula, Rows, ods, xlsx

PRICES: list[list[Cell]] = [
    ["Item", "Price", "Since"],
    ["Tea", 3, datetime.date(2024, 5, 1)],
    ["Cake", Formula("B2*2", 6.0), datetime.datetime(2024, 5, 1, 13, 30)],
    [None, None, None],
    ["Milk", 1.5, True],
]
WORKBOOK: dict[str, Rows] = {
    "Prices": PRICES,
    "Numbers": [[1, 2], [3, "x"]],
    "Secret": [["a"], ["b"]],
    "Empty": [],
}


@pytest.mark.parametrize(("key", "make"), [("book.xlsx", xlsx), ("book.XLSM", xlsx), ("book.ods", ods)])
def test_rows_of_each_visible_sheet_are_records(key: str, make: object) -> None:
    data = make(WORKBOOK, hidden=["Secret"])  # type: ignore[operator]
    document = parse_document(data, key)
    assert document.format == key.rsplit(".", 1)[1].lower()
    rows = [(document.text[s.start : s.end], s.metadata) for s in document.sections]
    assert rows == [
        ("Item: Tea\nPrice: 3\nSince: 2024-05-01", {"sheet": "Prices", "row": 2}),
        # a formula as the value saved with it; a date-time as ISO 8601
        ("Item: Cake\nPrice: 6\nSince: 2024-05-01T13:30:00", {"sheet": "Prices", "row": 3}),
        ("Item: Milk\nPrice: 1.5\nSince: TRUE", {"sheet": "Prices", "row": 5}),  # row 4 is empty
        # a first row of numbers is data: the columns are named by their letters
        ("A: 1\nB: 2", {"sheet": "Numbers", "row": 1}),
        ("A: 3\nB: x", {"sheet": "Numbers", "row": 2}),
    ]  # the hidden sheet and the empty one give nothing


def test_pack_records_packs_the_rows_of_one_sheet() -> None:
    document = parse_document(xlsx(WORKBOOK), "book.xlsx")
    chunks = chunk_document(document, ChunkingSettings(pack_records=True))
    assert [chunk.metadata for chunk in chunks] == [
        {"sheet": "Prices", "rows": [2, 3, 5]},
        {"sheet": "Numbers", "rows": [1, 2]},
        {"sheet": "Secret", "rows": [2]},  # not hidden here: its first row is its header
    ]
    assert chunk_document(document, ChunkingSettings())[0].metadata == {
        "sheet": "Prices",
        "row": 2,
    }


def test_rows_are_numbered_as_the_sheet_shows_them() -> None:
    rows: list[list[Cell]] = [
        [None, None, "Name", None],
        [None, None, "Ann", 7],
    ]  # C3:D4, D3 without a header
    document = parse_document(xlsx({"S": rows}, first_row=3), "s.xlsx")
    assert document.text == "Name: Ann\nD: 7"
    assert document.sections[0].metadata == {"sheet": "S", "row": 4}


def test_a_single_row_of_text_is_data_not_a_header() -> None:
    assert parse_document(xlsx({"S": [["only", "row"]]}), "s.xlsx").text == "A: only\nB: row"


def test_a_workbook_without_a_visible_value_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="no visible sheet"):
        parse_document(xlsx({"Shown": [], "Hidden": [["x"], ["y"]]}, hidden=["Hidden"]), "e.xlsx")


def test_a_grid_over_the_cap_is_refused_before_calamine_allocates_it() -> None:
    # Two cells at opposite corners: calamine would hold the grid between them (1.5 GB for 100k × 500).
    rows: list[list[Cell]] = [["a"], *[[]] * 99_998, [*[None] * 499, "z"]]
    started = time.perf_counter()
    with pytest.raises(
        DocumentTooLarge, match=r"sheet1.xml: its cells span 100000 rows × 500 columns, over 1048576 cells"
    ):
        parse_document(xlsx({"S": rows}), "corners.xlsx")
    assert time.perf_counter() - started < 5
    body = (
        '<table:table table:name="S"><table:table-row table:number-rows-repeated="2000000">'
        '<table:table-cell office:value-type="float" office:value="1"/></table:table-row></table:table>'
    )
    with pytest.raises(DocumentTooLarge, match="table 1: its cells span 2000000 rows"):
        parse_document(ods({}, body=body), "repeated.ods")


def test_a_zip_bomb_is_refused_by_its_declared_sizes() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", b"<sst>" + b" " * (65 * 1024 * 1024) + b"</sst>")
    data = buffer.getvalue()
    assert len(data) < 100_000
    with pytest.raises(DocumentTooLarge, match=r"member xl/sharedStrings.xml is \d+ bytes uncompressed"):
        parse_document(data, "bomb.xlsx")


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("broken.xlsx", b"PK\x03\x04 not really a zip", r"^broken xlsx \(BadZipFile"),
        ("broken.ods", b"plain text", r"^broken ods \(BadZipFile"),
        ("nosheets.xlsx", None, r"^broken xlsx \("),
    ],
)
def test_broken_workbooks_are_unsupported_with_a_reason(key: str, data: bytes | None, reason: str) -> None:
    if data is None:  # a ZIP without a workbook part
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("hello.txt", "hi")
        data = buffer.getvalue()
    with pytest.raises(UnsupportedDocument, match=reason):
        parse_document(data, key)


def test_spreadsheets_pass_the_upload_check_and_old_excel_is_refused_by_name() -> None:
    head = xlsx({"S": [["a"]]})[:SNIFF_BYTES]
    assert refusal("book.xlsx", head) is None
    assert refusal("book.ods", head) is None
    assert refusal("book.xlsm", head) is None
    assert (refusal("old.xls", b"\xd0\xcf\x11\xe0") or "").startswith(
        "unsupported format .xls (Excel 97-2003"
    )
    assert (refusal("bin.xlsb", head) or "").startswith("unsupported format .xlsb (Excel binary")


def test_a_million_row_sheet_stops_at_the_row_cap_as_csv_does() -> None:
    rows = [["n"]] + [[n] for n in range(1_048_575)]  # as tall as Excel's sheets
    data = xlsx({"S": rows})
    with pytest.raises(DocumentTooLarge, match="more than 50000 rows"):
        parse_document(data, "million.xlsx", limits=Limits(max_chunks=50_000))


def test_calamine_is_imported_with_the_first_spreadsheet_only() -> None:
    script = (
        "import sys\n"
        "from embedding_pipeline.stages.documents import parse_document\n"
        "parse_document(b'{\\\\rtf1 hi}', 'a.rtf')\n"
        "print('python_calamine' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
