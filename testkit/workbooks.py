"""Spreadsheets built in code (XLSX as SpreadsheetML, ODS as OpenDocument), for the tests and benchmarks.

Cells are Python values: str, int, float, bool, datetime.date/datetime (a date-formatted serial in
XLSX, an office:date-value in ODS), None (no cell), or `Formula(expression, cached)`: the formula
with the value a spreadsheet program saved for it.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_EXCEL_EPOCH = datetime.datetime(1899, 12, 30)


@dataclass(frozen=True)
class Formula:
    expression: str
    cached: str | float | bool


Cell = str | int | float | bool | datetime.date | Formula | None
Rows = Iterable[Sequence[Cell]]


def column_letters(column: int) -> str:
    name, column = "", column + 1
    while column:
        column, rest = divmod(column - 1, 26)
        name = chr(65 + rest) + name
    return name


def xlsx(sheets: Mapping[str, Rows], *, hidden: Iterable[str] = (), first_row: int = 1) -> bytes:
    """A workbook of `sheets` (name: rows, from row `first_row`), those named in `hidden` hidden."""
    hidden = set(hidden)
    names = list(sheets)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _content_types(len(names)))
        archive.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{_PACKAGE_RELS}"><Relationship Id="rId1" Type="{_RELS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        entries = "".join(
            f'<sheet name={quoteattr(name)} sheetId="{n + 1}" r:id="rId{n + 1}"'
            + (' state="hidden"' if name in hidden else "")
            + "/>"
            for n, name in enumerate(names)
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_RELS}"><sheets>{entries}</sheets></workbook>',
        )
        links = "".join(
            f'<Relationship Id="rId{n + 1}" Type="{_RELS}/worksheet" Target="worksheets/sheet{n + 1}.xml"/>'
            for n in range(len(names))
        )
        styles = f'<Relationship Id="rIdS" Type="{_RELS}/styles" Target="styles.xml"/>'
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{_PACKAGE_RELS}">{links}{styles}</Relationships>',
        )
        archive.writestr(
            "xl/styles.xml",
            f'<styleSheet xmlns="{_MAIN}"><cellXfs count="3"><xf numFmtId="0"/>'
            '<xf numFmtId="14" applyNumberFormat="1"/><xf numFmtId="22" applyNumberFormat="1"/>'
            "</cellXfs></styleSheet>",
        )
        for n, name in enumerate(names):
            with archive.open(f"xl/worksheets/sheet{n + 1}.xml", "w", force_zip64=True) as stream:
                stream.write(f'<worksheet xmlns="{_MAIN}"><sheetData>'.encode())
                for block in _blocks(_xlsx_rows(sheets[name], first_row)):
                    stream.write(block)
                stream.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


def _content_types(sheets: int) -> str:
    kinds = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n + 1}.xml" ContentType="{kinds}.worksheet+xml"/>'
        for n in range(sheets)
    )
    return (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{kinds}.sheet.main+xml"/>{overrides}</Types>'
    )


def _xlsx_rows(rows: Rows, first_row: int) -> Iterator[str]:
    for number, row in enumerate(rows, start=first_row):
        cells = "".join(
            _xlsx_cell(f"{column_letters(c)}{number}", v) for c, v in enumerate(row) if v is not None
        )
        yield f'<row r="{number}">{cells}</row>'


def _xlsx_cell(reference: str, value: Cell) -> str:
    formula = ""
    if isinstance(value, Formula):
        formula, value = f"<f>{escape(value.expression.lstrip('='))}</f>", value.cached
        if isinstance(value, str):
            return f'<c r="{reference}" t="str">{formula}<v>{escape(value)}</v></c>'
    if isinstance(value, bool):
        return f'<c r="{reference}" t="b">{formula}<v>{int(value)}</v></c>'
    if isinstance(value, str):
        return f'<c r="{reference}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    if isinstance(value, datetime.datetime):
        serial = (value - _EXCEL_EPOCH) / datetime.timedelta(days=1)
        return f'<c r="{reference}" s="2"><v>{serial}</v></c>'
    if isinstance(value, datetime.date):
        serial = (value - _EXCEL_EPOCH.date()).days
        return f'<c r="{reference}" s="1"><v>{serial}</v></c>'
    return f'<c r="{reference}">{formula}<v>{value}</v></c>'


def _blocks(pieces: Iterable[str]) -> Iterator[bytes]:
    block: list[str] = []
    for piece in pieces:
        block.append(piece)
        if len(block) >= 4096:
            yield "".join(block).encode()
            block = []
    yield "".join(block).encode()


_ODS_NAMESPACES = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" office:version="1.2"'
)


def ods(sheets: Mapping[str, Rows], *, hidden: Iterable[str] = (), body: str | None = None) -> bytes:
    """An OpenDocument spreadsheet of `sheets`; `body` replaces the tables' XML if given."""
    hidden = set(hidden)
    tables = body
    if tables is None:
        tables = "".join(
            f"<table:table table:name={quoteattr(name)}"
            + (' table:style-name="hidden"' if name in hidden else "")
            + ">"
            + "".join(_ods_row(row) for row in rows)
            + "</table:table>"
            for name, rows in sheets.items()
        )
    styles = (
        '<office:automatic-styles><style:style style:name="hidden" style:family="table">'
        '<style:table-properties table:display="false"/></style:style></office:automatic-styles>'
    )
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODS_NAMESPACES}>{styles}'
        f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr(
            "META-INF/manifest.xml",
            '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
            '<manifest:file-entry manifest:full-path="/" '
            'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
            '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def _ods_row(row: Sequence[Cell]) -> str:
    return "<table:table-row>" + "".join(_ods_cell(value) for value in row) + "</table:table-row>"


def _ods_cell(value: Cell) -> str:
    formula = ""
    if isinstance(value, Formula):
        formula = f" table:formula={quoteattr('of:' + value.expression)}"
        value = value.cached
    if value is None:
        return "<table:table-cell/>"
    if isinstance(value, bool):
        kind = f'office:value-type="boolean" office:boolean-value="{str(value).lower()}"'
    elif isinstance(value, str):
        kind = 'office:value-type="string"'
    elif isinstance(value, datetime.date):
        kind = f'office:value-type="date" office:date-value="{value.isoformat()}"'
    else:
        kind = f'office:value-type="float" office:value="{value}"'
    return f"<table:table-cell{formula} {kind}><text:p>{escape(str(value))}</text:p></table:table-cell>"
