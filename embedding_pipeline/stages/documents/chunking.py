"""Split extracted text into chunks the model accepts, with exact character offsets.

Units are paragraphs; a markdown heading starts a new unit and stays with the text after it; a unit
longer than a chunk is split into sentences, then words, then hard cuts. Units are packed greedily
into chunks of at most `max_chars`, never across a section (a PDF page, a JSONL record), and a
heading starts a new chunk. That is the canonical chunking: a first upload gets it, and so does any
upload after a change of the chunking settings or the model.

An edit must not cost more than the chunks it touches. With greedy packing alone, one paragraph
grown by a line shifts every later boundary; content-defined boundaries limit that, but trade
chunk fill for it (they close chunks early). So a re-upload does better: the previous records hold
the previous chunks, and every previous chunk whose text is still in the document, whole units at
whole-unit boundaries, is kept as it was (`PreviousChunks`; the longest match wins where several
start at one unit). Only the gaps between kept chunks are packed afresh, greedily, from the gap's
first unit. An edit inside one chunk leaves that chunk's units as the only gap: one or two chunks
are embedded, and the rest keep their vectors. The result depends on nothing but the previous
records and the new text, so a redelivery chunks the same way. Chunks with overlap are not kept
(their text begins inside the chunk before): with CHUNK_OVERLAP_TOKENS set, every upload is
chunked canonically.

Records (a JSON/JSONL record, a CSV row) are one chunk each unless `pack_records` is on: then runs
of records with equal metadata are packed whole, as units are, and their chunks list every record
they hold (record_packing.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from embedding_pipeline.stages.documents.model import Chunk, Limits, Meter, ParsedDocument, Section
from embedding_pipeline.stages.documents.previous_chunks import PreviousChunks, Window
from embedding_pipeline.stages.documents.record_packing import (
    RecordRun,
    holds_records,
    packed_metadata,
    record_runs,
    run_units,
    split_packed,
)
from embedding_pipeline.stages.documents.units import (
    PARAGRAPH_BREAK,
    SPACES,
    Unit,
    sentence_ends,
    strip,
    text_units,
)


@dataclass(frozen=True, slots=True)
class ChunkingSettings:
    max_tokens: int = 500
    overlap_tokens: int = 0
    chars_per_token: float = 3.0
    pack_records: bool = False  # consecutive records of equal metadata share chunks (record_packing.py)

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


def chunk_document(
    document: ParsedDocument,
    settings: ChunkingSettings,
    limits: Limits = Limits(),  # noqa: B008 (Limits is frozen: one shared default is safe)
    previous: PreviousChunks | None = None,
) -> list[Chunk]:
    """The document's chunks, in order: canonical, or keeping the `previous` chunks still found in
    it (see the module docstring). Units are generated as the packer takes them, so memory holds
    the chunks and not every paragraph; DocumentTooLarge comes before the list grows past
    `limits.max_chunks`, OutOfTime once `limits.deadline` has passed."""
    meter = Meter(limits, "chunking")
    keep = previous if previous and not settings.overlap_chars else None
    chunks: list[Chunk] = []
    for chunk in _chunks(document, settings, meter, keep):
        meter.add()
        chunks.append(chunk)
    return chunks


def _chunks(
    document: ParsedDocument, settings: ChunkingSettings, meter: Meter, previous: PreviousChunks | None
) -> Iterator[Chunk]:
    text = document.text
    if not (settings.pack_records and holds_records(document)):
        for section in document.sections:
            yield from _chunk_section(text, section, settings, meter, previous)
        return
    for run in record_runs(document, settings.max_chars):
        if isinstance(run, RecordRun):
            yield from _chunk_run(document, run, settings.max_chars, meter, previous)
        else:
            yield from _chunk_section(text, run, settings, meter, previous)


def _chunk_run(
    document: ParsedDocument, run: RecordRun, limit: int, meter: Meter, previous: PreviousChunks | None
) -> Iterator[Chunk]:
    """Whole records packed as units are, with no overlap: a chunk holds nothing of a record it
    does not list."""
    text, sections = document.text, document.sections
    units = run_units(text, sections, run, meter)
    spans = _pack(units, limit) if previous is None else _keep_and_pack(text, units, limit, previous)
    at = run.first
    for start, end in spans:
        first = at
        while at < run.stop and sections[at].start < end:
            at += 1
        members = sections[first:at]
        yield Chunk(text[start:end], start, end, packed_metadata(members), tuple(s.start for s in members))


def _chunk_section(
    text: str, section: Section, settings: ChunkingSettings, meter: Meter, previous: PreviousChunks | None
) -> Iterator[Chunk]:
    overlap = settings.overlap_chars
    limit = settings.max_chars - overlap  # room for the overlap keeps every chunk within max_chars
    units = text_units(text, section.start, section.end, limit, meter)
    spans = _pack(units, limit) if previous is None else _keep_and_pack(text, units, limit, previous)
    for number, (natural_start, end) in enumerate(spans):
        start = natural_start
        if overlap and number:
            start = _overlap_start(text, natural_start, max(section.start, natural_start - overlap))
        yield Chunk(text[start:end], start, end, section.metadata)


def _keep_and_pack(
    text: str, units: Iterator[Unit], limit: int, previous: PreviousChunks
) -> Iterator[tuple[int, int]]:
    """Previous chunks found whole at unit boundaries, as they were; the gaps between, packed.
    Streamed: memory holds the units a chunk can reach, not the section's."""
    window = Window(units, limit)
    gap: list[Unit] = []
    while window.fill():
        count = previous.longest_at(text, window, limit)
        if count is None:
            gap.extend(window.take(1))
            if gap[-1].end - gap[0].start > 2 * limit:
                # Greedy chunks never look back: all but the last one packed so far are final.
                spans = list(_pack(iter(gap), limit))
                yield from spans[:-1]
                gap = [unit for unit in gap if unit.start >= spans[-1][0]]
            continue
        yield from _pack(iter(gap), limit)
        gap.clear()
        kept = window.take(count)
        yield (kept[0].start, kept[-1].end)
    yield from _pack(iter(gap), limit)


def _pack(units: Iterator[Unit], limit: int) -> Iterator[tuple[int, int]]:
    """Greedy: as many units as fit. A heading that follows text starts a new chunk, unless the
    chunk so far is less than half full: a short section then shares a chunk with the next."""
    first = next(units, None)
    if first is None:
        return
    half = limit // 2
    start, end, last_heading = first.start, first.end, first.heading
    for unit in units:
        new_section = unit.heading and not last_heading and end - start >= half
        if unit.end - start > limit or new_section:
            yield (start, end)
            start = unit.start
        end, last_heading = unit.end, unit.heading
    yield (start, end)


def _overlap_start(text: str, start: int, earliest: int) -> int:
    """Move `start` back towards `earliest`, to the earliest sentence start (else word start) after it."""
    window = text[earliest:start]
    sentence = next(sentence_ends(window, 0, len(window)), None)
    if sentence is not None:
        return earliest + sentence[1]
    space = re.search(r"\s\S", window)
    return earliest + space.start() + 1 if space is not None else start


def split_chunk(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """Halve a chunk the API refused as too long, at the boundary nearest the middle (between
    records, for a packed chunk of several)."""
    if len(chunk.parts) > 1:
        return split_packed(chunk)
    text = chunk.text
    if len(text) < 2:
        raise ValueError("a chunk of one character cannot be split")
    middle = len(text) // 2
    cut = None
    paragraphs = (m.span() for m in PARAGRAPH_BREAK.finditer(text))
    words = (m.span() for m in SPACES.finditer(text))
    for boundaries in (paragraphs, sentence_ends(text, 0, len(text)), words):
        candidates = [end for start, end in boundaries if start > 0 and end < len(text)]
        if candidates:
            cut = min(candidates, key=lambda position: abs(position - middle))
            break
    cut = cut or middle
    left = strip(text, 0, cut) or (0, cut)
    right = strip(text, cut, len(text)) or (cut, len(text))
    return (
        replace(chunk, text=text[left[0] : left[1]], start=chunk.start + left[0], end=chunk.start + left[1]),
        replace(
            chunk, text=text[right[0] : right[1]], start=chunk.start + right[0], end=chunk.start + right[1]
        ),
    )
