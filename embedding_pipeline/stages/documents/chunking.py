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

import re
from dataclasses import dataclass, replace
from hashlib import blake2b

from embedding_pipeline.stages.documents.model import Limits, Metadata, ParsedDocument, Section

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…]+[\"'»”)\]]*\s+")
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
    document: ParsedDocument, settings: ChunkingSettings, limits: Limits | None = None
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in document.sections:
        chunks.extend(_chunk_section(document.text, section, settings))
    return chunks


def _chunk_section(text: str, section: Section, settings: ChunkingSettings) -> list[Chunk]:
    overlap = settings.overlap_chars
    limit = settings.max_chars - overlap  # room for the overlap keeps every chunk within max_chars
    spans = _pack(text, _units(text, section.start, section.end, limit), limit)
    chunks = []
    for number, (natural_start, end) in enumerate(spans):
        start = natural_start
        if overlap and number:
            start = _overlap_start(text, natural_start, max(section.start, natural_start - overlap))
        chunks.append(Chunk(text[start:end], start, end, section.metadata))
    return chunks


def _units(text: str, start: int, end: int, limit: int) -> list[_Unit]:
    units: list[_Unit] = []
    paragraph_start = start
    for match in _PARAGRAPH_BREAK.finditer(text, start, end):
        _paragraph_units(text, paragraph_start, match.start(), limit, units)
        paragraph_start = match.end()
    _paragraph_units(text, paragraph_start, end, limit, units)
    return units


def _paragraph_units(text: str, start: int, end: int, limit: int, units: list[_Unit]) -> None:
    """A paragraph, cut before each heading line inside it, then cut to size."""
    cuts = [m.start() for m in _HEADING_LINE.finditer(text, start, end) if m.start() > start]
    for piece_start, piece_end in zip([start, *cuts], [*cuts, end], strict=True):
        span = _strip(text, piece_start, piece_end)
        if span is None:
            continue
        heading = _HEADING_LINE.match(text, span[0]) is not None
        if span[1] - span[0] <= limit:
            units.append(_Unit(span[0], span[1], heading))
        else:
            units.extend(
                _Unit(s, e, heading and i == 0) for i, (s, e) in enumerate(_split_long(text, *span, limit))
            )


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Sentences, words, then hard cuts: every span within `limit`, stripped, in order."""
    out: list[tuple[int, int]] = []
    sentence_start = start
    bounds = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    for sentence_end in [*bounds, end]:
        span = _strip(text, sentence_start, sentence_end)
        sentence_start = sentence_end
        if span is None:
            continue
        if span[1] - span[0] <= limit:
            out.append(span)
            continue
        piece_start = piece_end = span[0]
        for word in _WORD.finditer(text, span[0], span[1]):
            if word.end() - piece_start > limit and piece_end > piece_start:
                out.append((piece_start, piece_end))
                piece_start = word.start()
            while word.end() - piece_start > limit:  # one word longer than a chunk: hard cuts
                out.append((piece_start, piece_start + limit))
                piece_start += limit
            piece_end = word.end()
        if piece_end > piece_start:
            out.append((piece_start, piece_end))
    return out


def _pack(text: str, units: list[_Unit], limit: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    if not units:
        return spans
    min_chars = limit // 2
    start, end, last_heading = units[0].start, units[0].end, units[0].heading
    for unit in units[1:]:
        too_big = unit.end - start > limit
        new_section = unit.heading and not last_heading
        anchor = not last_heading and end - start >= min_chars and _is_anchor(text, unit)
        if too_big or new_section or anchor:
            spans.append((start, end))
            start = unit.start
        end, last_heading = unit.end, unit.heading
    spans.append((start, end))
    return spans


def _is_anchor(text: str, unit: _Unit) -> bool:
    # blake2b, not hash(): Python salts str hashes per process, and boundaries must be reproducible.
    digest = blake2b(text[unit.start : unit.end].encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") % _ANCHOR_ONE_IN == 0


def _overlap_start(text: str, start: int, earliest: int) -> int:
    """Move `start` back towards `earliest`, to the earliest sentence start (else word start) after it."""
    window = text[earliest:start]
    sentence = _SENTENCE_END.search(window)
    if sentence is not None:
        return earliest + sentence.end()
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
    for pattern in (_PARAGRAPH_BREAK, _SENTENCE_END, re.compile(r"\s+")):
        candidates = [m.end() for m in pattern.finditer(text) if m.start() > 0 and m.end() < len(text)]
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
