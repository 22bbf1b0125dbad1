"""CSV and TSV: a row per section if there is a text column, else rows rendered as "name: value" lines.

The delimiter is the one given (CSV_DELIMITER; a tab for .tsv), else sniffed from the first lines
among `,`, `;`, tab and `|` (`csv.Sniffer`, as pandas' `sep=None` does), else a comma: a sniffed
delimiter counts only if the header line holds it, so a one-column file whose text is full of `;`
stays one column.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from typing import Any

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Limits, Meter, ParsedDocument, TextBuilder
from embedding_pipeline.stages.documents.records import RecordSections

DELIMITERS = ",;\t|"
# A CSV row is parsed whole before it can be looked at; a field is at most 128 KiB (csv's own limit),
# so only a row of thousands of fields comes near this, and 2 Mi one-character fields cost ~32 MB.
_MAX_CSV_ROW_CHARS = 2 * 1024 * 1024
_SNIFF_LINES = 20  # what csv.Sniffer looks at: enough rows to see one delimiter's count hold steady
# ... and no more text than this: its quote patterns are quadratic in a line's length (a crafted
# line of `;"` takes 0.1 s at 4 KiB, 1.5 s at 16 KiB)
_SNIFF_CHARS = 4 * 1024


def sniff_delimiter(text: str) -> str:
    """The delimiter of the text's first lines: csv.Sniffer's guess, if the header holds it; else ','."""
    end = 0
    for _ in range(_SNIFF_LINES):
        found = text.find("\n", end, _SNIFF_CHARS)
        if found < 0:
            break
        end = found + 1
    sample = text[: end or _SNIFF_CHARS]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:  # one column, or no delimiter that holds steady
        return ","
    return delimiter if delimiter in sample.partition("\n")[0] else ","


class _CsvLines:
    """The text's lines for csv.reader, newlines kept; refuses a row longer than the cap before csv
    builds it (a line of commas is millions of fields)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._position = 0
        self.row_chars = 0
        self.rows = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        start = self._position
        if start >= len(self._text):
            raise StopIteration
        end = self._text.find("\n", start) + 1 or len(self._text)
        self.row_chars += end - start
        if self.row_chars > _MAX_CSV_ROW_CHARS:
            raise DocumentTooLarge(f"CSV row {self.rows} is longer than {_MAX_CSV_ROW_CHARS} characters")
        self._position = end
        return self._text[start:end]


def csv_rows(text: str, text_field: str, limits: Limits, delimiter: str | None = None) -> ParsedDocument:
    """The rows of a CSV by `delimiter`, else by the one sniffed from its first lines."""
    source = _CsvLines(text)
    rows = csv.DictReader(source, delimiter=delimiter or sniff_delimiter(text))

    def each() -> Iterator[tuple[int, dict[str | Any, Any]]]:
        try:
            for number, row in enumerate(rows):
                yield number, row
                source.row_chars, source.rows = 0, number + 1
        except csv.Error as exc:
            raise UnsupportedDocument(f"invalid CSV: {exc}") from None

    numbered = each()
    first = next(numbered, None)
    if first is None:
        raise EmptyDocument("CSV has no data rows")
    numbered = itertools.chain([first], numbered)
    if text_field in first[1]:
        records = RecordSections("csv", text_field, limits)
        for number, row in numbered:
            body = row.get(text_field) or ""
            row[text_field] = body  # a short row leaves the text column None: no text, no section
            records.add(row, number, f"row {number}", number_key="row")
        return records.document(f"no row has text in column {text_field!r}")
    # No text column: each row becomes a block of "name: value" lines, long header names repeated.
    meter = Meter(limits, "parsing")
    blocks = TextBuilder("csv", sectioned=False)
    for _, row in numbered:
        meter.step()
        block = "\n".join(
            f"{name}: {value}" for name, value in row.items() if isinstance(name, str) and value
        )
        if block:
            blocks.add(block)
    return blocks.document()
