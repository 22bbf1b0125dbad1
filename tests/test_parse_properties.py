"""Hardening: random and mutated documents of every format through parsing and chunking.

Property: parse + chunk either returns chunks (each the exact span of the text it names, encodable as
UTF-8 for its content hash) or raises one of the product's permanent errors, within a few seconds
(a deadline turns a slow example into OutOfTime, which is neither). `FUZZ_EXAMPLES=500 make test`
digs deeper.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.stages.documents import ChunkingSettings, Limits, chunk_document, parse_document
from embedding_pipeline.stages.vectorize import content_hash
from testkit.adversarial import docx, pdf_pages, text_page

TIME_BOUND_S = 5.0
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
SEEDS: dict[str, bytes] = {
    "txt": "Hello there. Second sentence!\n\nА это второй абзац… с многоточием.\n".encode(),
    "md": b"# Title\n\nParagraph one. Two.\n\n## Sub\nText under it.\n- item\n- item\n",
    "html": b"<html><head><style>p{}</style></head><body><h1>T&amp;C</h1><p>One <b>two</b></p>"
    b"<ul><li>a</li><li>b</li></ul><script>x<y</script><!-- c --></body></html>",
    "json": json.dumps(
        {"records": [{"id": 1, "text": "One. Two.", "tags": ["x"]}, {"text": "Three"}]}
    ).encode(),
    "jsonl": b'{"id": "a", "text": "One."}\n\n{"id": "b", "text": "Two.", "n": 2.5}\n',
    "csv": b'id,text,lang\n1,hello world,en\n2,"multi\nline, quoted",ru\n3,,\n',
    "pdf": pdf_pages([text_page("Hello world. First page."), text_page("Second page")]),
    "docx": docx(
        f'<?xml version="1.0"?><w:document {_W}><w:body><w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr>'
        "<w:r><w:t>Title</w:t></w:r></w:p><w:p><w:r><w:t>Body</w:t><w:tab/><w:t>text.</w:t></w:r></w:p>"
        "</w:body></w:document>".encode()
    ),
}
# Text drawn from the characters each format is made of, so that examples reach the parser proper.
ALPHABETS = {
    "txt": "ab .!?…\n\t\r#",
    "md": "ab #.\n -*",
    "html": "ab<>/!-=\"'&;#x pli",
    "json": '{}[]",:0123456789.-eE tnrufalsx\\\n',
    "jsonl": '{}[]",:019.-e tnrufalsx\\\n',
    "csv": 'ab,"\n\t te',
    "pdf": "%PDF-1.4 obj<>/[]()0123456789 RTjBTET\nstreamend",
    "docx": "PK\x03\x04<>/w:tp ",
}
FORMATS = sorted(SEEDS)
EXAMPLES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check(data: bytes, key: str) -> None:
    limits = Limits(max_chunks=10_000, deadline=Deadline.after(TIME_BOUND_S))
    started = time.perf_counter()
    try:
        document = parse_document(data, key, limits=limits)
        chunks = chunk_document(document, ChunkingSettings(max_tokens=40), limits)
    except PermanentError as exc:
        reason = str(exc)  # what the document is parked with
    else:
        reason = ""
        assert chunks
        for chunk in chunks:
            assert chunk.text == document.text[chunk.start : chunk.end]
            assert content_hash(chunk.text)
            json.dumps(chunk.metadata, ensure_ascii=False).encode()  # as the records file writes it
    assert time.perf_counter() - started < TIME_BOUND_S
    assert reason or chunks


def mutate(seed: bytes, data: st.DataObject) -> bytes:
    """A few byte-level edits of a valid document: flips, insertions, deletions, a truncation."""
    out = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6), label="edits")):
        if not out:
            break
        position = data.draw(st.integers(0, len(out) - 1), label="position")
        edit = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]), label="edit")
        if edit == "flip":
            out[position] = data.draw(st.integers(0, 255), label="byte")
        elif edit == "insert":
            out[position:position] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        elif edit == "delete":
            del out[position : position + data.draw(st.integers(1, 16), label="length")]
        elif edit == "truncate":
            del out[position:]
        else:  # a piece repeated: nesting, long runs
            piece = bytes(out[position : position + data.draw(st.integers(1, 8), label="length")])
            out[position:position] = piece * data.draw(st.integers(2, 2000), label="times")
    return bytes(out)


@pytest.mark.parametrize("extension", FORMATS)
@EXAMPLES
@given(data=st.binary(max_size=4096))
def test_random_bytes(extension: str, data: bytes) -> None:
    check(data, f"incoming/random.{extension}")


@pytest.mark.parametrize("extension", FORMATS)
@EXAMPLES
@given(data=st.data())
def test_mutated_documents(extension: str, data: st.DataObject) -> None:
    check(mutate(SEEDS[extension], data), f"incoming/mutated.{extension}")


@pytest.mark.parametrize("extension", FORMATS)
@EXAMPLES
@given(data=st.data())
def test_text_of_the_formats_own_characters(extension: str, data: st.DataObject) -> None:
    text = data.draw(st.text(alphabet=st.sampled_from(ALPHABETS[extension]), max_size=3000))
    check(text.encode(), f"incoming/drawn.{extension}")


@pytest.mark.parametrize("extension", FORMATS)
def test_the_seeds_themselves_make_chunks(extension: str) -> None:
    document = parse_document(SEEDS[extension], f"incoming/seed.{extension}")
    assert chunk_document(document, ChunkingSettings(max_tokens=40))
