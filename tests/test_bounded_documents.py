"""Unit: parsing and chunking take bounded time and memory for any input the size caps admit.

The inputs come from testkit/adversarial.py (the benchmark measures the same shapes at full size).
Time bounds are generous on purpose: the quadratic chunker took minutes for what is asked here in
seconds. Memory is measured in a fresh interpreter (VmHWM), or with tracemalloc in this one.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import DocumentTooLarge, OutOfTime
from embedding_pipeline.stages.documents import (
    ChunkingSettings,
    Limits,
    ParsedDocument,
    Section,
    chunk_document,
    parse_document,
)
from testkit.adversarial import MB, TIME_SHAPES, Shape, docx_bomb, numbered, pdf_pages, peak_rss, text_page
from tests.test_formats import _docx

CHUNKING = ChunkingSettings()  # the defaults: 500 tokens × 3 characters
PAST = Limits(deadline=Deadline(expires_at=time.monotonic() - 1))


@pytest.mark.parametrize("shape", TIME_SHAPES, ids=lambda shape: shape.name)
def test_pathological_text_is_chunked_in_linear_time(shape: Shape) -> None:
    # GIVEN a megabyte of a shape that once took hours (40,000 dots took 34 s, and time grew as the
    # square of the size)
    data = shape.make(MB)
    # WHEN it is parsed and chunked
    started = time.perf_counter()
    chunks = chunk_document(parse_document(data, shape.key), CHUNKING)
    # THEN it takes a second or so, and every character but whitespace is in exactly one chunk
    assert time.perf_counter() - started < 10
    assert sum(len("".join(chunk.text.split())) for chunk in chunks) == len("".join(data.decode().split()))


def test_a_run_of_dots_is_still_one_run_of_hard_cuts() -> None:
    chunks = chunk_document(parse_document(b"." * 40_000, "dots.txt"), CHUNKING)
    assert [len(chunk.text) for chunk in chunks] == [1500] * 26 + [1000]


def _tiny_items() -> dict[str, tuple[str, bytes]]:
    return {
        "csv rows": ("rows.csv", b"id,text\n" + numbered("{},a\n", MB)),
        "jsonl records": ("r.jsonl", numbered('{{"id":{},"text":"a"}}\n', MB)),
        "json records": ("r.json", b"[" + numbered('{{"id":{},"text":"a"}},', MB) + b'{"text":"a"}]'),
        "json records under 'items'": (
            "r.json",
            b'{"items": [' + numbered('{{"text":"a{}"}},', MB) + b'{"text":"a"}], "n": 1}',
        ),
    }


@pytest.mark.parametrize(("key", "data"), _tiny_items().values(), ids=_tiny_items().keys())
def test_count_guard_stops_at_the_first_item_over_the_cap(key: str, data: bytes) -> None:
    # GIVEN a file of many tiny items (each would make a chunk), broken in the middle
    cut = len(data) // 2
    broken = data[:cut] + b"\x00 neither csv nor json \x00" + data[cut:]
    # WHEN it is parsed with room for 100 chunks
    tracemalloc.start()
    with pytest.raises(DocumentTooLarge, match=r"more than 100 \w+.* MAX_CHUNKS_PER_DOCUMENT=100"):
        parse_document(broken, key, limits=Limits(max_chunks=100))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # THEN it stopped at item 101: the broken middle was never read, nor the rest built (old: 20 MB)
    assert peak < 6 * MB


def test_count_guard_counts_pdf_pages_with_text() -> None:
    document = pdf_pages([text_page(f"page {n}") if n % 2 else b"" for n in range(40)])
    assert len(parse_document(document, "p.pdf", limits=Limits(max_chunks=20)).sections) == 20
    with pytest.raises(DocumentTooLarge, match="more than 19 pages with text"):
        parse_document(document, "p.pdf", limits=Limits(max_chunks=19))


def test_chunk_guard_fires_before_the_list_grows() -> None:
    # GIVEN 4 MB of markdown where every heading starts a chunk: ~280,000 chunks
    text = numbered("# H{}\n\nbody\n\n", 4 * MB).decode()
    document = ParsedDocument(text, "markdown", (Section(0, len(text), {}),))
    # WHEN it is chunked with room for 1,000
    tracemalloc.start()
    with pytest.raises(DocumentTooLarge, match=r"more than 1000 chunks: over MAX_CHUNKS_PER_DOCUMENT=1000"):
        chunk_document(document, CHUNKING, Limits(max_chunks=1000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # THEN what was built is a thousand chunks, not 290,000 (~60 MB) of them nor a unit per paragraph
    assert peak < 2 * MB


def test_without_limits_every_chunk_comes() -> None:
    text = numbered("# H{}\n\nbody\n\n", 200_000).decode()
    document = ParsedDocument(text, "markdown", (Section(0, len(text), {}),))
    chunks = chunk_document(document, CHUNKING)
    assert len(chunks) > 200  # many chunks, and every section in one of them
    assert sum(chunk.text.count("# H") for chunk in chunks) == text.count("# H")


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("notes.txt", b"hello"),
        ("notes.md", b"# hello"),
        ("page.html", b"<p>hello</p>"),
        ("r.json", b'[{"text": "hello"}]'),
        ("r.jsonl", b'{"text": "hello"}'),
        ("r.csv", b"text\nhello\n"),
        ("p.pdf", pdf_pages([text_page("hello")])),
        ("d.docx", _docx([(None, "hello")])),
    ],
)
def test_past_the_deadline_parsing_stops(key: str, data: bytes) -> None:
    with pytest.raises(OutOfTime, match="parsing"):
        parse_document(data, key, limits=PAST)
    assert parse_document(data, key).text.endswith("hello")  # the same document, in time


def test_past_the_deadline_chunking_stops() -> None:
    document = parse_document(b"hello", "notes.txt")
    with pytest.raises(OutOfTime, match="chunking"):
        chunk_document(document, CHUNKING, PAST)


@pytest.mark.parametrize(
    ("key", "make"),
    [
        ("tiny.md", lambda: b"a\n\n" * 2_000_000),
        ("lines.jsonl", lambda: b'{"text": " "}\n' * 400_000),
        ("rows.csv", lambda: b"text,id\n" + b",1\n" * 2_000_000),
        ("blocks.html", lambda: b"<p>a</p>" * 1_000_000),
        ("bomb.docx", lambda: docx_bomb(30 * MB)),
    ],
)
def test_a_deadline_that_passes_midway_stops_the_work_soon_after(key: str, make: Callable[[], bytes]) -> None:
    # GIVEN a document that takes seconds to parse and chunk, and 0.2 s to do it in
    data = make()
    limits = Limits(deadline=Deadline.after(0.2))
    started = time.perf_counter()
    # WHEN it is parsed and chunked THEN the work stops with OutOfTime, soon after the deadline
    with pytest.raises(OutOfTime):
        chunk_document(parse_document(data, key, limits=limits), CHUNKING, limits)
    assert time.perf_counter() - started < 1.5


@pytest.mark.parametrize(
    ("key", "make", "outcome"),
    [
        # 30 MB of XML in 90 KB: the old parser held its whole tree (49 MB took 660-700 MB)
        ("bomb.docx", lambda: docx_bomb(30 * MB), "chunks"),
        # 30 MB of tiny rows: the old parser built every row (4.8 GB) before counting
        ("rows.csv", lambda: b"id,text\n" + numbered("{},a\n", 30 * MB), "DocumentTooLarge"),
    ],
)
def test_peak_memory_stays_within_the_function(
    tmp_path: Path, key: str, make: Callable[[], bytes], outcome: str
) -> None:
    path = tmp_path / key
    path.write_bytes(make())
    figures = peak_rss(path, f"incoming/{key}", timeout_s=120)
    assert outcome in figures.get("outcome", ""), figures
    assert figures["peak_rss_mb"] < 200, figures  # the deployed function has 256 MB


def test_docx_body_declared_past_the_cap_is_refused_before_it_is_read() -> None:
    with pytest.raises(DocumentTooLarge, match="DOCX declares more than 64 MiB of XML"):
        parse_document(_declaring_size(docx_bomb(MB), 65 * 2**20), "big.docx")


def _declaring_size(docx: bytes, size: int) -> bytes:
    """The archive with word/document.xml's uncompressed size in the central directory set to `size`."""
    data = bytearray(docx)
    name = b"word/document.xml"
    position = data.find(b"PK\x01\x02")
    while position >= 0:
        if data[position + 46 : position + 46 + len(name)] == name:
            data[position + 24 : position + 28] = size.to_bytes(4, "little")
        position = data.find(b"PK\x01\x02", position + 1)
    return bytes(data)
