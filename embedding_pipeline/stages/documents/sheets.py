"""Spreadsheets (XLSX, XLSM, ODS) through python-calamine: each row of each visible sheet a record.

A row becomes `header: value` lines, one per non-empty cell, with the sheet's name and the row's
number (as the spreadsheet shows it, from 1) as its metadata: `{"sheet": "Prices", "row": 12}`. Rows
are records as CSV rows with a text column are (records.py): each non-blank one a section, counted
against MAX_CHUNKS_PER_DOCUMENT, and packed by PACK_RECORDS, consecutive rows of one sheet sharing
a chunk that lists them (`{"sheet": "Prices", "rows": [12, 13, 14]}`).

- Header: the sheet's first row with a value is its header if every non-empty cell in it is text
  and a row follows it; else every row is data. A column without a header name is called by its
  letter (`C: 12`), as the spreadsheet labels it.
- Values: formulas as the value the file holds for them (calamine does not evaluate; a workbook
  saved by a program that writes no values has none); dates and times as ISO 8601, durations as
  ISO 8601 durations, whole numbers without ".0", booleans as TRUE and FALSE.
- Hidden and very hidden sheets are skipped, as are chart and macro sheets: a hidden sheet holds
  lookup tables, intermediate results or data kept from readers, none of which a reader of the
  workbook sees, and search must not surface what its author hid. Empty sheets give nothing.
- Before calamine reads anything, sheet_bounds.py checks the ZIP's declared sizes and each sheet's
  grid (calamine holds a sheet as a dense grid).
"""

from __future__ import annotations

import datetime
import io
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from embedding_pipeline.errors import PipelineError, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Limits, Meter, ParsedDocument
from embedding_pipeline.stages.documents.records import RecordSections
from embedding_pipeline.stages.documents.sheet_bounds import check_workbook

if TYPE_CHECKING:
    from python_calamine import CalamineWorkbook

_TEXT = "text"  # the rendered row, the record's text; its other field is the sheet's name
_WHOLE_FLOATS = 2.0**53  # below this a whole float prints exactly as an int


def sheet_rows(data: bytes, limits: Limits, document_format: str) -> ParsedDocument:
    """The rows of every visible sheet, as records; see the module docstring."""
    meter = Meter(limits, "parsing")
    check_workbook(data, document_format, meter)
    records = RecordSections(document_format, _TEXT, limits)
    try:
        workbook = _open(data)
        with workbook:
            for name in _visible_sheets(workbook):
                meter.check_time()
                rows = workbook.get_sheet_by_name(name)
                if rows.start is not None:
                    _add_rows(records, name, rows.start[1], rows.iter_rows())
    except PipelineError:
        raise
    except Exception as exc:  # calamine's errors (CalamineError and its kinds), and others on crafted files
        detail = f": {str(exc)[:160]}" if str(exc) else ""
        raise UnsupportedDocument(f"broken {document_format} ({type(exc).__name__}{detail})") from None
    return records.document(f"no visible sheet of this {document_format} has a value")


def _open(data: bytes) -> CalamineWorkbook:
    # Imported here: only spreadsheets need calamine, and cold start pays for every import.
    from python_calamine import CalamineWorkbook, PasswordError  # noqa: PLC0415

    try:
        return CalamineWorkbook.from_filelike(io.BytesIO(data))
    except PasswordError:
        raise UnsupportedDocument("encrypted workbook (password protected)") from None


def _visible_sheets(workbook: CalamineWorkbook) -> Iterator[str]:
    from python_calamine import SheetTypeEnum, SheetVisibleEnum  # noqa: PLC0415

    for sheet in workbook.sheets_metadata:
        if sheet.visible == SheetVisibleEnum.Visible and sheet.typ == SheetTypeEnum.WorkSheet:
            yield sheet.name


def _add_rows(records: RecordSections, sheet: str, first_column: int, rows: Iterator[list[Any]]) -> None:
    """Rows numbered from 1 (calamine's iter_rows starts at the sheet's first row, and at the first
    column with a value: `first_column`, 0 for A)."""
    numbered = enumerate(rows, start=1)
    for start in numbered:
        if any(cell != "" for cell in start[1]):
            break
        records.step()
    else:
        return
    number, first = start
    following = next(numbered, None)
    rest = itertools.chain([following] if following is not None else [], numbered)
    header = _header(first, first_column) if following is not None else None
    if header is None:
        header = [_letters(first_column + index) for index in range(len(first))]
        rest = itertools.chain([(number, first)], rest)
    for number, row in rest:
        text = _render(header, row, first_column)
        if text:
            records.add(
                {_TEXT: text, "sheet": sheet}, number, f"sheet {sheet!r} row {number}", number_key="row"
            )
        else:
            records.step()


def _header(row: Sequence[Any], first_column: int) -> list[str] | None:
    """The row's cells as column names if every non-empty one is text, else None."""
    if not all(isinstance(cell, str) for cell in row if cell != ""):
        return None
    return [cell.strip() or _letters(first_column + index) for index, cell in enumerate(row)]


def _render(header: Sequence[str], row: Sequence[Any], first_column: int) -> str:
    lines = []
    for index, cell in enumerate(row):
        value = _value(cell)
        if value:
            name = header[index] if index < len(header) else _letters(first_column + index)
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def _value(cell: Any) -> str:
    """A cell as text; "" for an empty one (see the module docstring)."""
    if isinstance(cell, str):
        return cell.strip()
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < _WHOLE_FLOATS:
        return str(int(cell))
    if isinstance(cell, datetime.date | datetime.time):  # datetime is a date
        return cell.isoformat()
    if isinstance(cell, datetime.timedelta):
        return _duration(cell)
    return str(cell)


def _duration(span: datetime.timedelta) -> str:
    """ISO 8601: PT36H30M, P-less of days, as spreadsheets count hours past 24 (`[h]:mm`)."""
    sign = "-" if span < datetime.timedelta(0) else ""
    seconds = abs(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{int(hours)}H" if hours else "", f"{int(minutes)}M" if minutes else ""]
    if seconds or not any(parts):
        parts.append(f"{seconds:g}S")
    return f"{sign}PT{''.join(parts)}"


def _letters(column: int) -> str:
    """The spreadsheet's name of column `column` (0 is A, 26 is AA)."""
    name = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        name = chr(65 + rest) + name
    return name
