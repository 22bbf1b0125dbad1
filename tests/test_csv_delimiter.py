"""Unit: a CSV's delimiter is sniffed from its first lines (`,` `;` tab `|`), else a comma, unless
CSV_DELIMITER names one."""

from __future__ import annotations

import pytest

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents import Metadata, parse_document
from embedding_pipeline.stages.documents.csvdoc import sniff_delimiter


def rows(data: str, key: str = "rows.csv", csv_delimiter: str | None = None) -> list[tuple[str, Metadata]]:
    document = parse_document(data.encode(), key, csv_delimiter=csv_delimiter)
    return [(document.text[s.start : s.end], s.metadata) for s in document.sections]


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_each_delimiter_is_sniffed(delimiter: str) -> None:
    data = delimiter.join(["id", "text", "lang"]) + "\n"
    data += delimiter.join(["7", "первая строка", "ru"]) + "\n"
    data += delimiter.join(["8", "second row", "en"]) + "\n"
    assert sniff_delimiter(data) == delimiter
    assert rows(data) == [
        ("первая строка", {"id": "7", "lang": "ru", "row": 0}),
        ("second row", {"id": "8", "lang": "en", "row": 1}),
    ]


def test_quoted_fields_may_hold_the_other_delimiters() -> None:
    data = 'id;text;lang\n1;"hello, world | a\tb";en\n2;"one; two, three";ru\n3;plain;en\n'
    assert rows(data) == [
        ("hello, world | a\tb", {"id": "1", "lang": "en", "row": 0}),
        ("one; two, three", {"id": "2", "lang": "ru", "row": 1}),
        ("plain", {"id": "3", "lang": "en", "row": 2}),
    ]
    commas = 'id,text\n1,"a; b; c"\n2,"d; e; f"\n3,"g | h"\n'
    assert [text for text, _ in rows(commas)] == ["a; b; c", "d; e; f", "g | h"]


def test_a_one_column_csv_stays_one_column() -> None:
    data = "text\n" + "".join(f"строка {n}; с точкой с запятой | и чертой\n" for n in range(30))
    assert sniff_delimiter(data) == ","  # ';' holds steady in the rows, but the header has none
    assert rows(data)[4] == ("строка 4; с точкой с запятой | и чертой", {"row": 4})
    assert rows("text\nhello\nworld\n") == [("hello", {"row": 0}), ("world", {"row": 1})]


def test_without_a_text_column_the_sniffed_columns_are_rendered() -> None:
    document = parse_document(b"name;city\nAnna;Moscow\nBoris;Kazan\n", "people.csv")
    assert document.text == "name: Anna\ncity: Moscow\n\nname: Boris\ncity: Kazan"


def test_the_sample_is_bounded() -> None:
    long_rows = "".join(f'{n};"{"x;" * 3000}"\n' for n in range(100))
    assert sniff_delimiter("id;text\n" + long_rows) == ";"


def test_the_setting_overrides_the_sniffer() -> None:
    data = "id;text\n1;a,b\n2;c,d\n"
    assert [text for text, _ in rows(data)] == ["a,b", "c,d"]
    # Forced to commas, the header is one column named "id;text" and no column is "text".
    assert rows(data, csv_delimiter=",") == [("id;text: 1;a\n\nid;text: 2;c", {})]
    assert rows("text|n\nx,y|1\n", csv_delimiter="|") == [("x,y", {"n": "1", "row": 0})]


def test_tsv_is_read_by_tabs_whatever_its_rows_hold() -> None:
    assert rows("text\tlang\na;b;c\tes\n", key="t.tsv") == [("a;b;c", {"lang": "es", "row": 0})]


def test_csv_delimiter_setting() -> None:
    assert load_settings(yc_folder_id="f").csv_delimiter is None
    assert load_settings(yc_folder_id="f", csv_delimiter=";").csv_delimiter == ";"
    assert load_settings(yc_folder_id="f", csv_delimiter="\t").csv_delimiter == "\t"
    with pytest.raises(ConfigurationError, match="CSV_DELIMITER"):
        load_settings(yc_folder_id="f", csv_delimiter=":")
