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
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from embedding_pipeline.stages.documents.model import Limits, Metadata, Meter, ParsedDocument, Section

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_HEADING_LINE = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_SENTENCE_PUNCTUATION = re.compile(r"[.!?…]+[\"'»”)\]]*")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\S+")
_PREFIX_CHARS = 48  # previous chunks are looked up by their first characters, then checked whole
_CANDIDATES = 32  # previous chunks kept per opening: more that open alike are chunked afresh
_DIGEST_BYTES = 32  # a SHA-256
_EMPTY = -1  # a free slot of PreviousChunks' index


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


class PreviousChunks:
    """The chunks of the records a re-upload replaces, by what can be looked up cheaply: the hash of
    each one's first characters, its length and its text hash. No texts are kept (a 20 MB
    document's would double the memory of the run): a span of the new text that opens the same and
    is as long is hashed and compared.

    The table is held while the new text is chunked, when a run's memory peaks, so it is made of
    flat arrays, some 55 bytes a chunk, not of Python objects: a dict of tuples and a set of hex strings
    took 400 bytes a chunk (4.5 MB for a 20 MB document), and being made one record at a time
    among the parsed records' garbage, they kept that garbage's memory from going back as well.
    Rows are found by an open-addressing index of their openings' hashes, grown as rows come: no
    step ever makes an object per row."""

    def __init__(self, digest: Callable[[str], str]) -> None:
        self._digest = digest  # a hex SHA-256, as content_hash gives
        self._openings: array[int] = array("q")  # hash(text[:_PREFIX_CHARS]), consistent in-process
        self._lengths: array[int] = array("i")
        self._digests = bytearray()  # the text hashes, _DIGEST_BYTES a row
        self._index: array[int] = array("i", [_EMPTY]) * 64  # rows by opening; a power of two long
        self._indexed = 0

    def add(self, text: str, text_hash: str) -> None:
        """ValueError if `text_hash` is no hex SHA-256 (a damaged record)."""
        if not text:
            return
        digest = bytes.fromhex(text_hash)
        if len(digest) != _DIGEST_BYTES:
            raise ValueError(f"not a SHA-256: {text_hash!r}")
        opening = hash(text[:_PREFIX_CHARS])
        alike = 0
        for row in self._rows_opening(opening):
            if self._digest_of(row) == digest:
                return  # the same text again
            alike += 1
        self._openings.append(opening)
        self._lengths.append(len(text))
        self._digests += digest
        if alike < _CANDIDATES:  # boilerplate openings must not make lookups quadratic
            self._place(len(self._lengths) - 1)

    def __len__(self) -> int:
        return len(self._lengths)

    def hashes(self) -> set[str]:
        """The text hashes, for reusing vectors: made when asked, once the chunking is done."""
        step = _DIGEST_BYTES
        return {self._digests[at : at + step].hex() for at in range(0, len(self._digests), step)}

    def _place(self, row: int) -> None:
        if 2 * (self._indexed + 1) > len(self._index):  # at most half full: probes stay short
            old, self._index = self._index, array("i", [_EMPTY]) * (2 * len(self._index))
            for placed in old:
                if placed != _EMPTY:
                    self._index[self._free_slot(self._openings[placed])] = placed
        self._index[self._free_slot(self._openings[row])] = row
        self._indexed += 1

    def _free_slot(self, opening: int) -> int:
        mask = len(self._index) - 1
        slot = opening & mask
        while self._index[slot] != _EMPTY:
            slot = (slot + 1) & mask
        return slot

    def _rows_opening(self, opening: int) -> Iterator[int]:
        """The indexed rows whose opening has this hash: at most _CANDIDATES."""
        mask = len(self._index) - 1
        slot = opening & mask
        while (row := self._index[slot]) != _EMPTY:
            if self._openings[row] == opening:
                yield row
            slot = (slot + 1) & mask

    def _digest_of(self, row: int) -> bytes:
        return bytes(self._digests[row * _DIGEST_BYTES : (row + 1) * _DIGEST_BYTES])

    def _alike(self, span: str) -> Iterator[tuple[int, bytes]]:
        """(length, digest) of the chunks that open as `span` does (all of it, if it is shorter)."""
        for row in self._rows_opening(hash(span[:_PREFIX_CHARS])):
            yield self._lengths[row], self._digest_of(row)

    def _found(self, span: str, digest: bytes) -> bool:
        return bytes.fromhex(self._digest(span)) == digest

    def longest_at(self, text: str, window: _Window, limit: int) -> int | None:
        """How many units of `window`, from its first, make the longest previous chunk found whole
        there (ending where a unit ends, within `limit`); None if none. The work is bounded per
        unit: a few short spans, and at most _CANDIDATES chunks that open alike."""
        start, best = window.units[0].start, None
        for count, unit in enumerate(itertools.islice(window.units, 0, _PREFIX_CHARS), start=1):
            if unit.end - start >= _PREFIX_CHARS:
                break
            span = text[start : unit.end]  # shorter than an opening: keyed by its whole text
            if any(n == len(span) and self._found(span, d) for n, d in self._alike(span)):
                best = count
        for length, digest in self._alike(text[start : start + _PREFIX_CHARS]):
            reach = window.count_to(start + length)
            if (
                reach is None
                or length > limit
                or length < _PREFIX_CHARS
                or (best is not None and reach <= best)
            ):
                continue
            if self._found(text[start : start + length], digest):
                best = reach
        return best


class _Window:
    """The units ahead of the chunker, as far as a chunk can reach, and which of them ends where."""

    def __init__(self, units: Iterator[_Unit], reach: int) -> None:
        self._source, self._reach = units, reach
        self.units: deque[_Unit] = deque()
        self._taken = 0  # units popped so far: positions in `_ends` are absolute
        self._ends: dict[int, int] = {}

    def fill(self) -> bool:
        """Read ahead until the units span `reach` characters from the first; False when empty."""
        while not self.units or self.units[-1].end - self.units[0].start <= self._reach:
            unit = next(self._source, None)
            if unit is None:
                break
            self._ends[unit.end] = self._taken + len(self.units)
            self.units.append(unit)
        return bool(self.units)

    def count_to(self, end: int) -> int | None:
        position = self._ends.get(end)
        return None if position is None else position - self._taken + 1

    def take(self, count: int) -> list[_Unit]:
        taken = [self.units.popleft() for _ in range(count)]
        for unit in taken:
            del self._ends[unit.end]
        self._taken += count
        return taken


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    heading: bool


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
    for section in document.sections:
        for chunk in _chunk_section(document.text, section, settings, meter, keep):
            meter.add()
            chunks.append(chunk)
    return chunks


def _chunk_section(
    text: str, section: Section, settings: ChunkingSettings, meter: Meter, previous: PreviousChunks | None
) -> Iterator[Chunk]:
    overlap = settings.overlap_chars
    limit = settings.max_chars - overlap  # room for the overlap keeps every chunk within max_chars
    units = _units(text, section.start, section.end, limit, meter)
    spans = _pack(units, limit) if previous is None else _keep_and_pack(text, units, limit, previous)
    for number, (natural_start, end) in enumerate(spans):
        start = natural_start
        if overlap and number:
            start = _overlap_start(text, natural_start, max(section.start, natural_start - overlap))
        yield Chunk(text[start:end], start, end, section.metadata)


def _keep_and_pack(
    text: str, units: Iterator[_Unit], limit: int, previous: PreviousChunks
) -> Iterator[tuple[int, int]]:
    """Previous chunks found whole at unit boundaries, as they were; the gaps between, packed.
    Streamed: memory holds the units a chunk can reach, not the section's."""
    window = _Window(units, limit)
    gap: list[_Unit] = []
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


def _pack(units: Iterator[_Unit], limit: int) -> Iterator[tuple[int, int]]:
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
