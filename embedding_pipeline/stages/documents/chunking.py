"""Split extracted text into chunks the model accepts, with exact character offsets.

Units are paragraphs; a markdown heading starts a new unit and stays with the text after it; a unit
longer than a chunk is split into sentences, then words, then hard cuts. Units are packed into
chunks of at most `max_chars`, never across a section (a PDF page, a JSONL record).

Boundaries are content-defined, because the pipeline reuses the vectors of unchanged chunks by their
text's hash: greedy packing from the start would let one edited paragraph shift every later boundary
and re-embed the rest of the document. Here a chunk also closes before a unit whose own text hashes
to an anchor once the chunk holds at least half of `max_chars`, so after an edit the boundaries fall
back into step at the next anchor and later chunks come out identical.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from hashlib import blake2b

from embedding_pipeline.stages.documents.model import Limits, Metadata, Meter, ParsedDocument, Section

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_SENTENCE_PUNCTUATION = re.compile(r"[.!?…]+[\"'»”)\]]*")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_ANCHOR_ONE_IN = 2


@dataclass(frozen=True, slots=True)
class ChunkingSettings:
    max_tokens: int = 500
    overlap_tokens: int = 0
    chars_per_token: float = 3.0

    def __post_init__(self) -> None:
        if not 16 <= self.max_tokens <= 2000:
            raise ValueError(
                "max_tokens must be between 16 and 2000 (the model refuses more than 2000 tokens)"
            )
        if not 0 <= self.overlap_tokens * 2 < self.max_tokens:
            raise ValueError("overlap_tokens must be at least 0 and less than half of max_tokens")
        if not 0.5 < self.chars_per_token <= 10:
            raise ValueError("chars_per_token must be in (0.5, 10]")

    @property
    def max_chars(self) -> int:
        return int(self.max_tokens * self.chars_per_token)

    @property
    def overlap_chars(self) -> int:
        return int(self.overlap_tokens * self.chars_per_token)


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    start: int
    end: int
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    heading: bool


def chunk_document(
    document: ParsedDocument,
    settings: ChunkingSettings,
    limits: Limits = Limits(),  # noqa: B008 (Limits is frozen: one shared default is safe)
) -> list[Chunk]:
    """The document's chunks, in order. Units are generated as the packer takes them, so memory holds
    the chunks and not every paragraph; DocumentTooLarge comes before the list grows past
    `limits.max_chunks`, OutOfTime once `limits.deadline` has passed."""
    meter = Meter(limits, "chunking")
    chunks: list[Chunk] = []
    for section in document.sections:
        for chunk in _chunk_section(document.text, section, settings, meter):
            meter.add()
            chunks.append(chunk)
    return chunks


def _chunk_section(text: str, section: Section, settings: ChunkingSettings, meter: Meter) -> Iterator[Chunk]:
    overlap = settings.overlap_chars
    limit = settings.max_chars - overlap  # room for the overlap keeps every chunk within max_chars
    units = _units(text, section.start, section.end, limit, meter)
    for number, (natural_start, end) in enumerate(_pack(text, units, limit)):
        start = natural_start
        if overlap and number:
            start = _overlap_start(text, natural_start, max(section.start, natural_start - overlap))
        yield Chunk(text[start:end], start, end, section.metadata)


def _units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[_Unit]:
    paragraph_start = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        yield from _paragraph_units(text, paragraph_start, match.start(), limit, meter)
        paragraph_start = match.end()
    yield from _paragraph_units(text, paragraph_start, end, limit, meter)


def _paragraph_units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[_Unit]:
    """A paragraph, cut before each heading line inside it, then cut to size."""
    piece_start = start
    for heading in _HEADING_LINE.finditer(text, start, end):
        if heading.start() > piece_start:
            yield from _piece_units(text, piece_start, heading.start(), limit, meter)
            piece_start = heading.start()
    yield from _piece_units(text, piece_start, end, limit, meter)


def _piece_units(text: str, start: int, end: int, limit: int, meter: Meter) -> Iterator[_Unit]:
    meter.step()
    span = _strip(text, start, end)
    if span is None:
        return
    heading = _HEADING_LINE.match(text, span[0]) is not None
    if span[1] - span[0] <= limit:
        yield _Unit(span[0], span[1], heading)
        return
    for number, (piece_start, piece_end) in enumerate(_split_long(text, *span, limit)):
        meter.step()
        yield _Unit(piece_start, piece_end, heading and number == 0)


def _sentence_ends(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Each run of sentence punctuation (with closing quotes and brackets) and the whitespace after it.

    Two linear scans instead of one pattern: a pattern that needs the whitespace after the run
    would try again from every character of a run that has none (a line of 40,000 dots took 34 s).
    """
    for run in _SENTENCE_PUNCTUATION.finditer(text, start, end):
        spaces = _SPACES.match(text, run.end(), end)
        if spaces is not None:
            yield run.start(), spaces.end()


def _split_long(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """Sentences, words, then hard cuts: every span within `limit`, stripped, in order."""
    sentence_start = start
    for sentence_end in itertools.chain((e for _, e in _sentence_ends(text, start, end)), (end,)):
        span = _strip(text, sentence_start, sentence_end)
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


def _pack(text: str, units: Iterator[_Unit], limit: int) -> Iterator[tuple[int, int]]:
    first = next(units, None)
    if first is None:
        return
    min_chars = limit // 2
    start, end, last_heading = first.start, first.end, first.heading
    for unit in units:
        too_big = unit.end - start > limit
        new_section = unit.heading and not last_heading
        anchor = not last_heading and end - start >= min_chars and _is_anchor(text, unit)
        if too_big or new_section or anchor:
            yield (start, end)
            start = unit.start
        end, last_heading = unit.end, unit.heading
    yield (start, end)


def _is_anchor(text: str, unit: _Unit) -> bool:
    # blake2b, not hash(): Python salts str hashes per process, and boundaries must be reproducible.
    digest = blake2b(text[unit.start : unit.end].encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") % _ANCHOR_ONE_IN == 0


def _overlap_start(text: str, start: int, earliest: int) -> int:
    """Move `start` back towards `earliest`, to the earliest sentence start (else word start) after it."""
    window = text[earliest:start]
    sentence = next(_sentence_ends(window, 0, len(window)), None)
    if sentence is not None:
        return earliest + sentence[1]
    space = re.search(r"\s\S", window)
    return earliest + space.start() + 1 if space is not None else start


def _strip(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def split_chunk(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """Halve a chunk the API refused as too long, at the boundary nearest the middle."""
    text = chunk.text
    if len(text) < 2:
        raise ValueError("a chunk of one character cannot be split")
    middle = len(text) // 2
    cut = None
    paragraphs = (m.span() for m in _PARAGRAPH_BREAK.finditer(text))
    words = (m.span() for m in _SPACES.finditer(text))
    for boundaries in (paragraphs, _sentence_ends(text, 0, len(text)), words):
        candidates = [end for start, end in boundaries if start > 0 and end < len(text)]
        if candidates:
            cut = min(candidates, key=lambda position: abs(position - middle))
            break
    cut = cut or middle
    left = _strip(text, 0, cut) or (0, cut)
    right = _strip(text, cut, len(text)) or (cut, len(text))
    return (
        replace(chunk, text=text[left[0] : left[1]], start=chunk.start + left[0], end=chunk.start + left[1]),
        replace(
            chunk, text=text[right[0] : right[1]], start=chunk.start + right[0], end=chunk.start + right[1]
        ),
    )
