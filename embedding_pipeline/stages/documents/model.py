"""What parsing produces (the extracted text and the sections chunks must not cross), the chunks made
of it, and what one document may cost while it is parsed and chunked (`Limits`, counted by a
`Meter`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import DocumentTooLarge, OutOfTime, UnsupportedDocument
from embedding_pipeline.text_safety import lone_surrogate_at

MetadataScalar = str | int | float | bool | None
# Scalars, as records' fields are; lists only where PACK_RECORDS names the records a chunk holds.
Metadata = dict[str, MetadataScalar | list[MetadataScalar]]

# Text a parser derives (PDF pages, DOCX paragraphs, CSV rows rendered as "name: value") is held to as
# many characters as the largest .txt that the default MAX_SOURCE_BYTES (32 MiB) admits: a 150 KB
# DOCX or PDF can otherwise expand to gigabytes, and text is what memory is spent on (the text, then
# its chunks' copies: 2 to 8 bytes a character in all).
MAX_TEXT_CHARS = 32 * 1024 * 1024

_CHECK_EVERY = 256  # units, records or rows between looks at the clock (each takes microseconds)
_NOT_SPACE = re.compile(r"\S")  # \s is str.isspace(), as str.strip() has it


@dataclass(frozen=True, slots=True)
class Section:
    """A span of the extracted text (a JSONL record, a PDF page) with what to say about it."""

    start: int
    end: int
    metadata: Metadata


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    text: str
    format: str
    sections: tuple[Section, ...]
    # Pages (1-based) that only OCR can read: a PDF's pages without a usable text layer, an image's
    # one page. Their text is not in `text`; pipeline/ocr.py adds it (stages/documents/pages.py).
    unread_pages: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Chunk:
    text: str
    start: int
    end: int
    metadata: Metadata
    # Where each record of a packed chunk starts (absolute offsets), to halve it between records.
    parts: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may cost: checked while parsing and chunking, not after."""

    # DocumentTooLarge as soon as more chunks (or more non-empty sections/records/rows, each of which
    # makes at least one chunk) than this would come
    max_chunks: int | None = None
    # OutOfTime once deadline.expired(), checked between pages, records, rows and units
    deadline: Deadline | None = None


class Meter:
    """Counts what a document is about to cost against its Limits, while it is being produced."""

    __slots__ = ("_count", "_deadline", "_max_chunks", "_steps", "_what")

    def __init__(self, limits: Limits, what: str) -> None:
        self._max_chunks = limits.max_chunks
        self._deadline = limits.deadline
        self._what = what  # "chunking", "parsing": said in OutOfTime's message
        self._steps = 0
        self._count = 0
        self.check_time()

    def step(self) -> None:
        """One cheap unit of work done (a paragraph, a row): looks at the clock every so often."""
        self._steps += 1
        if not self._steps % _CHECK_EVERY:
            self.check_time()

    def check_time(self) -> None:
        if self._deadline is not None and self._deadline.expired():
            raise OutOfTime(f"the invocation's time budget ran out while {self._what} the document")

    def add(self, items: str = "chunks") -> None:
        """One more of what becomes at least one chunk; DocumentTooLarge before it goes over the cap."""
        self._count += 1
        if self._max_chunks is not None and self._count > self._max_chunks:
            each = "" if items == "chunks" else ", each of which makes at least one chunk"
            raise DocumentTooLarge(
                f"more than {self._max_chunks} {items}{each}: over MAX_CHUNKS_PER_DOCUMENT={self._max_chunks}"
            )


class TextBuilder:
    """Texts joined by a blank line, each a section, built without holding millions of small strings.

    Pieces are joined in blocks as they come, so a document of a million tiny records costs about
    its text in memory, not a list entry and a string header for each record.
    """

    __slots__ = ("_block", "_blocks", "_format", "_limit", "_sections", "length")

    def __init__(self, document_format: str, *, sectioned: bool, limit: int | None = MAX_TEXT_CHARS) -> None:
        self._format = document_format
        self._limit = limit
        self._sections: list[Section] | None = [] if sectioned else None
        self._blocks: list[str] = []
        self._block: list[str] = []
        self.length = 0

    def add(self, text: str, metadata: Metadata | None = None) -> None:
        """The next text; a section of its own (with `metadata`) if the builder is sectioned."""
        if self.length:
            self._append("\n\n")
        start = self.length
        self._append(text)
        if self._limit is not None and self.length > self._limit:
            raise DocumentTooLarge(
                f"the text extracted from this {self._format} document is over {self._limit} characters"
            )
        if self._sections is not None:
            self._sections.append(Section(start, self.length, metadata or {}))

    def _append(self, text: str) -> None:
        self._block.append(text)
        self.length += len(text)
        if len(self._block) >= 4096:
            self._blocks.append("".join(self._block))
            self._block = []

    def document(self) -> ParsedDocument:
        """The text so far: one section per text if sectioned, else one over the whole text."""
        text = "".join([*self._blocks, *self._block])
        self._blocks, self._block = [], []
        if self._sections is None:
            return whole(text, self._format)
        return ParsedDocument(text, self._format, tuple(self._sections))


def whole(text: str, document_format: str) -> ParsedDocument:
    return ParsedDocument(text, document_format, (Section(0, len(text), {}),))


def has_text(text: str) -> bool:
    """`text.strip() != ""` without the copy: 30 MB of text with one emoji is a 120 MB str."""
    return _NOT_SPACE.search(text) is not None


def refuse_lone_surrogates(text: str, where: str) -> None:
    """UnsupportedDocument for text holding half of a UTF-16 pair (text_safety.py says why)."""
    if lone_surrogate_at(text) is not None:
        raise UnsupportedDocument(f"{where} holds a lone surrogate (invalid Unicode)")
