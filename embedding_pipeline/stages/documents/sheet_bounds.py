"""What a workbook will cost python-calamine, found before calamine reads it.

Calamine holds each sheet as a dense grid from its first to its last cell with a value (~80 bytes a
cell while it loads, measured), whatever lies between: an XLSX of two cells, at A1 and at Z100000,
took 1.5 GB, and one at XFD1048576 aborts the process. So each worksheet's XML is streamed through
expat first, counting only where cells with a value lie, and a sheet whose grid is over
MAX_SHEET_CELLS is refused before calamine allocates it. The ZIP's members are held to their
declared sizes (Python's zipfile reads no more than declared and checks the CRC), and those sizes
are capped, so a zip bomb is refused by its directory and the scan costs at most the caps.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from xml.parsers import expat

from embedding_pipeline.errors import DocumentTooLarge, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Meter

# A column as tall as Excel's sheets (2^20 rows): ~85 MB of calamine's memory while it loads (a sheet
# is loaded, read and dropped in turn), so the row cap, not this one, stops a sheet of a million rows.
MAX_SHEET_CELLS = 1_048_576
# A million one-cell rows are 54 MB of sheet XML; the scan reads ~40 MB/s, calamine faster.
_MAX_PART_BYTES = 64 * 1024 * 1024
_MAX_TOTAL_BYTES = 128 * 1024 * 1024  # every member, declared: the zip bomb's answer
_READ_BYTES = 256 * 1024
_ODS_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0 "
_ODS_VALUE_TYPE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0 value-type"


def check_workbook(data: bytes, document_format: str, meter: Meter) -> None:
    """DocumentTooLarge if a member, all members or a sheet's grid is over its cap; UnsupportedDocument
    if the ZIP or a sheet's XML is broken."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            total = 0
            for info in members:
                total += info.file_size
                if info.file_size > _MAX_PART_BYTES:
                    raise DocumentTooLarge(
                        f"{document_format} member {info.filename} is {info.file_size} bytes "
                        f"uncompressed: over {_MAX_PART_BYTES // 2**20} MiB"
                    )
            if total > _MAX_TOTAL_BYTES:
                raise DocumentTooLarge(
                    f"{document_format} members are {total} bytes uncompressed: over "
                    f"{_MAX_TOTAL_BYTES // 2**20} MiB (a zip bomb, or too large to read)"
                )
            for info in members:
                scan = _scanner(document_format, info.filename)
                if scan is not None:
                    _scan(archive, info, scan, meter)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
        raise UnsupportedDocument(f"broken {document_format} ({type(exc).__name__}: {exc})") from None
    except (NotImplementedError, RuntimeError, ValueError, OSError) as exc:  # compression, encryption
        raise UnsupportedDocument(f"broken {document_format} ({type(exc).__name__}: {exc})") from None
    except expat.ExpatError as exc:
        raise UnsupportedDocument(f"broken {document_format} (invalid XML: {exc})") from None


class _Grid:
    """The bounding box of the cells with a value seen so far in one sheet."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.top = self.left = 1 << 40
        self.bottom = self.right = -1

    def add(self, top: int, left: int, bottom: int, right: int) -> None:
        self.top, self.left = min(self.top, top), min(self.left, left)
        self.bottom, self.right = max(self.bottom, bottom), max(self.right, right)
        cells = (self.bottom - self.top + 1) * (self.right - self.left + 1)
        if cells > MAX_SHEET_CELLS:
            raise DocumentTooLarge(
                f"{self.where}: its cells span {self.bottom - self.top + 1} rows × "
                f"{self.right - self.left + 1} columns, over {MAX_SHEET_CELLS} cells"
            )


class _XlsxSheet:
    """xl/worksheets/*.xml: c elements at r="B12" (or next to the one before), with v, is or f."""

    def __init__(self, where: str) -> None:
        self.grid = _Grid(where)
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self._start
        self._row = 0
        self._column = 0
        self._open = False  # inside a c: its first v, is or f counts it

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition(":")[2]
        if local == "row":
            given = attributes.get("r")
            self._row = int(given) if given and given.isdecimal() and len(given) < 9 else self._row + 1
            self._column = 0
        elif local == "c":
            self._open = True
            self._row, self._column = _reference(attributes.get("r"), self._row, self._column + 1)
        elif local in ("v", "is", "f") and self._open:
            self._open = False
            self.grid.add(self._row, self._column, self._row, self._column)


class _OdsContent:
    """content.xml: table:table-row and table:table-cell, each maybe repeated many times over."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.grid = _Grid(where)
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self._start
        self.parser.EndElementHandler = self._end
        self._tables = 0
        self._row = 0
        self._repeat = 1
        self._column = 0
        self._left = self._right = -1

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _ODS_TABLE + "table":
            self._tables += 1
            self.grid = _Grid(f"{self.where}, table {self._tables}")
            self._row = 0
        elif name == _ODS_TABLE + "table-row":
            self._repeat = _count(attributes.get(_ODS_TABLE + "number-rows-repeated"))
            self._column, self._left, self._right = 0, -1, -1
        elif name in (_ODS_TABLE + "table-cell", _ODS_TABLE + "covered-table-cell"):
            span = _count(attributes.get(_ODS_TABLE + "number-columns-repeated"))
            if _ODS_VALUE_TYPE in attributes:
                self._left = self._column if self._left < 0 else self._left
                self._right = self._column + span - 1
            self._column += span

    def _end(self, name: str) -> None:
        if name == _ODS_TABLE + "table-row":
            if self._right >= 0:
                self.grid.add(self._row, self._left, self._row + self._repeat - 1, self._right)
            self._row += self._repeat


def _scanner(document_format: str, name: str) -> _XlsxSheet | _OdsContent | None:
    if document_format in ("xlsx", "xlsm") and name.startswith("xl/worksheets/") and name.endswith(".xml"):
        return _XlsxSheet(f"{document_format} sheet {name}")
    if document_format == "ods" and name == "content.xml":
        return _OdsContent("ods content.xml")
    return None


def _scan(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, scan: _XlsxSheet | _OdsContent, meter: Meter
) -> None:
    scan.parser.StartDoctypeDeclHandler = _doctype
    with archive.open(info) as stream:
        while chunk := stream.read(_READ_BYTES):
            scan.parser.Parse(chunk, False)
            meter.check_time()
        scan.parser.Parse(b"", True)


def _doctype(*_args: object) -> None:
    raise UnsupportedDocument("spreadsheet XML declares a DTD, which its format forbids")


def _reference(given: str | None, row: int, column: int) -> tuple[int, int]:
    """(row, column) from "B12"; the row and column given when there is no valid reference."""
    if not given or len(given) > 12:
        return row, column
    letters = given.rstrip("0123456789")
    digits = given[len(letters) :]
    if not letters.isalpha() or not letters.isascii() or not digits:
        return row, column
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return int(digits), number


def _count(given: str | None) -> int:
    """A repeat count: 1 unless a valid positive number is given (ODS's limit is 2^31)."""
    return int(given) if given and given.isdecimal() and 0 < len(given) < 11 and int(given) > 0 else 1
