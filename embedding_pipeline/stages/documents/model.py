"""What parsing produces: the extracted text and the sections chunks must not cross."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_pipeline.deadline import Deadline

Metadata = dict[str, str | int | float | bool | None]


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


def join_sections(parts: list[tuple[str, Metadata]], document_format: str) -> ParsedDocument:
    """Join texts with a blank line between them; each becomes a section pointing at its span."""
    pieces: list[str] = []
    sections: list[Section] = []
    offset = 0
    for text, metadata in parts:
        if pieces:
            pieces.append("\n\n")
            offset += 2
        pieces.append(text)
        sections.append(Section(offset, offset + len(text), metadata))
        offset += len(text)
    return ParsedDocument("".join(pieces), document_format, tuple(sections))


def whole(text: str, document_format: str) -> ParsedDocument:
    return ParsedDocument(text, document_format, (Section(0, len(text), {}),))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one document may cost: checked while parsing and chunking, not after."""

    max_chunks: int | None = None
    deadline: Deadline | None = None
