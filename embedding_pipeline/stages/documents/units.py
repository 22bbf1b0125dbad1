"""Text into the units chunks are packed from: paragraphs, cut before each markdown heading line,
and a paragraph longer than a chunk cut into sentences, then words, then hard cuts. Every unit is a
stripped span of the text, in order, never longer than the limit it was cut for."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from embedding_pipeline.stages.documents.model import Meter

PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
HEADING_LINE = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
SPACES = re.compile(r"\s+")
_SENTENCE_PUNCTUATION = re.compile(r"[.!?…]+[\"'»”)\]]*")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Unit:
    start: int
    end: int
    heading: bool


def text_units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[Unit]:
    paragraph_start = start
    for match in PARAGRAPH_BREAK.finditer(text, start, end):
        yield from _paragraph_units(text, paragraph_start, match.start(), limit, meter)
        paragraph_start = match.end()
    yield from _paragraph_units(text, paragraph_start, end, limit, meter)


def _paragraph_units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[Unit]:
    """A paragraph, cut before each heading line inside it, then cut to size."""
    piece_start = start
    for heading in HEADING_LINE.finditer(text, start, end):
        if heading.start() > piece_start:
            yield from _piece_units(text, piece_start, heading.start(), limit, meter)
            piece_start = heading.start()
    yield from _piece_units(text, piece_start, end, limit, meter)


def _piece_units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[Unit]:
    meter.step()
    span = strip(text, start, end)
    if span is None:
        return
    heading = HEADING_LINE.match(text, span[0]) is not None
    if span[1] - span[0] <= limit:
        yield Unit(span[0], span[1], heading)
        return
    for number, (piece_start, piece_end) in enumerate(_split_long(text, *span, limit)):
        meter.step()
        yield Unit(piece_start, piece_end, heading and number == 0)


def sentence_ends(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Each run of sentence punctuation (with closing quotes and brackets) and the whitespace after it.

    Two linear scans instead of one pattern: a pattern that needs the whitespace after the run
    would try again from every character of a run that has none (a line of 40,000 dots took 34 s).
    """
    for run in _SENTENCE_PUNCTUATION.finditer(text, start, end):
        spaces = SPACES.match(text, run.end(), end)
        if spaces is not None:
            yield run.start(), spaces.end()


def _split_long(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """Sentences, words, then hard cuts: every span within `limit`, stripped, in order."""
    sentence_start = start
    for sentence_end in itertools.chain((e for _, e in sentence_ends(text, start, end)), (end,)):
        span = strip(text, sentence_start, sentence_end)
        sentence_start = sentence_end
        if span is None:
            continue
        if span[1] - span[0] <= limit:
            yield span
            continue
        piece_start = piece_end = span[0]
        for word in _WORD.finditer(text, span[0], span[1]):
            if word.end() - piece_start > limit and piece_end > piece_start:
                yield (piece_start, piece_end)
                piece_start = word.start()
            while word.end() - piece_start > limit:  # one word longer than a chunk: hard cuts
                yield (piece_start, piece_start + limit)
                piece_start += limit
            piece_end = word.end()
        if piece_end > piece_start:
            yield (piece_start, piece_end)


def strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None
