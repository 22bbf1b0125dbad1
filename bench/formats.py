"""Spreadsheets and RTF (issue 38): linear time, peak RSS under 200 MB, crafted files included.

1. Time to parse and chunk each shape at 1× and 4× its size, in this process (×4 the size must cost
   at most ×5 the time).
2. Peak RSS of a fresh process parsing, chunking and hashing each large or crafted file with the
   default limits (`testkit.adversarial.peak_rss`, as `bench/pathological.py` measures the others).

Command: `.venv/bin/python -m bench.formats`.
"""

from __future__ import annotations

import datetime
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence

from bench.pathological import peak_rss, report
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.stages.documents import chunk_document, parse_document
from testkit.adversarial import MB, Shape, default_limits
from testkit.workbooks import Cell, ods, xlsx

_RUSSIAN = "Съешь же ещё этих мягких французских булок, да выпей чаю. ".encode("cp1251")


def table(rows: int, columns: int = 3) -> Iterator[Sequence[Cell]]:
    yield ["text", "price", "date"][:columns] + [f"c{n}" for n in range(3, columns)]
    day = datetime.date(2024, 1, 1)
    for n in range(rows):
        row: list[Cell] = [f"item {n} of the catalogue", n * 1.5, day, *[n] * (columns - 3)]
        yield row[:columns]


def rtf_text(size: int) -> bytes:
    escaped = b"".join(b"\\'%02x" % byte if byte > 127 else bytes((byte,)) for byte in _RUSSIAN)
    paragraph = escaped + b"\\par\n"
    return (
        b"{\\rtf1\\ansi\\ansicpg1251{\\fonttbl{\\f0\\fcharset204 Arial;}}\\f0 "
        + paragraph * (size // len(paragraph))
        + b"}"
    )


def rtf_control_words(size: int) -> bytes:
    return b"{\\rtf1" + b"\\b\\i0\\fs24 " * (size // 12) + b"}"


def rtf_unicode(size: int) -> bytes:
    unit = b"\\u1055?\\u1088?\\u1080? \\u55357\\u56832? "
    return b"{\\rtf1\\uc1 " + unit * (size // len(unit)) + b"}"


def xlsx_zip_bomb(_size: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/sharedStrings.xml", b"<sst>" + b" " * (200 * 2**20) + b"</sst>")
    return buffer.getvalue()


def xlsx_corners(_size: int) -> bytes:
    return xlsx({"S": [["a"], *[[]] * 1_048_574, [*[None] * 16383, "z"]]})


Make = Callable[[int], bytes]
# name, key, make(n), the 1× n (4× is timed too)
TIME_SHAPES: tuple[tuple[str, str, Make, int], ...] = (
    ("xlsx rows (3 columns)", "rows.xlsx", lambda n: xlsx({"S": table(n)}), 12_000),
    ("ods rows (3 columns)", "rows.ods", lambda n: ods({"S": list(table(n))}), 12_000),
    ("rtf cp1251 text", "text.rtf", rtf_text, 1_250_000),
    ("rtf \\u escapes", "unicode.rtf", rtf_unicode, 1_250_000),
    ("rtf control words only", "controls.rtf", rtf_control_words, 1_250_000),
)
# As large as the caps admit, or crafted
MEMORY_SHAPES = (
    Shape(
        "xlsx sheet of 1,048,575 rows (one column)",
        "tall.xlsx",
        lambda n: xlsx({"S": ([v] for v in range(n))}),
        1_048_575,
    ),
    Shape(
        "xlsx 50,000 rows × 20 columns (1M cells)", "wide.xlsx", lambda n: xlsx({"S": table(n, 20)}), 49_999
    ),
    Shape("ods 50,000 rows × 20 columns", "wide.ods", lambda n: ods({"S": list(table(n, 20))}), 49_999),
    Shape("xlsx two cells at A1 and XFD1048576", "corners.xlsx", xlsx_corners, 0),
    Shape("xlsx zip bomb: 200 MiB of shared strings", "bomb.xlsx", xlsx_zip_bomb, 0),
    Shape("rtf 30 MB of cp1251 escapes", "text.rtf", rtf_text, 30 * MB),
    Shape("rtf 30 MB of \\u escapes", "unicode.rtf", rtf_unicode, 30 * MB),
    Shape("rtf 30 MB of control words only", "controls.rtf", rtf_control_words, 30 * MB),
)


def timings() -> dict[str, object]:
    chunking, limits = default_limits()
    out: dict[str, object] = {}
    for name, key, make, size in TIME_SHAPES:
        seconds, outcomes = [], []
        for n in (size, size * 4):
            data = make(n)
            started = time.perf_counter()
            outcome = "parsed"
            try:
                chunks = chunk_document(parse_document(data, key, limits=limits), chunking, limits)
                outcome = f"{len(chunks)} chunks"
            except PermanentError as exc:  # a refusal is an outcome too: its time counts
                outcome = type(exc).__name__
            seconds.append(time.perf_counter() - started)
            outcomes.append(f"{len(data) / MB:.2f} MB: {outcome}")
        out[name] = {
            "seconds": [round(s, 3) for s in seconds],
            "inputs": outcomes,
            "ratio_4x_size": round(seconds[1] / max(seconds[0], 1e-6), 1),
        }
    return out


def main() -> dict[str, object]:
    rss = peak_rss(MEMORY_SHAPES)  # first, as before the timings
    return report(timings(), rss)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
