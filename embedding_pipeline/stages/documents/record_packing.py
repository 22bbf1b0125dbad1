"""PACK_RECORDS: consecutive records of equal metadata packed into one chunk, within its budget.

By default a JSON/JSONL record or a CSV row is a chunk of its own (or several, if it is longer than
one), with the record's metadata: `{"id": "a7", "lang": "ru", "record": 5}`. Small records then waste
requests at a rate-limited API, so with packing on, a chunk holds as many whole records as fit, all
with the same metadata besides their number and `id`, and lists each of them, in order:
`{"lang": "ru", "records": [5, 6, 7], "ids": ["a7", "a8", "a9"]}` ("rows" for CSV; `ids` only when
the records have one, null for any that has not). A filter on any other field still matches
exactly the chunks of the records that hold it, and `{"ids": ["a8"]}` (jsonb containment) the chunk
that holds a8. A record longer than a chunk is chunked alone, as it would be unpacked, with the
same listed metadata. Records are packed by the same packer as paragraphs, so a re-upload keeps
every previous chunk still found whole (chunking.py): an edit re-embeds the chunk it falls in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from embedding_pipeline.stages.documents.model import (
    Chunk,
    Metadata,
    MetadataScalar,
    Meter,
    ParsedDocument,
    Section,
)
from embedding_pipeline.stages.documents.units import Unit, strip

RECORD_FORMATS = frozenset({"json", "jsonl", "csv", "xlsx", "xlsm", "ods"})  # sheets.py: rows
NUMBER_KEYS = ("record", "row")  # what records.py names a record's number, by format
ID_FIELD = "id"  # a record's own identifier, listed beside its number


@dataclass(frozen=True, slots=True)
class RecordRun:
    """Sections `first` to `stop` (excluded): consecutive records of equal metadata, each of which fits
    in a chunk by itself."""

    first: int
    stop: int


def holds_records(document: ParsedDocument) -> bool:
    """Whether the document's sections are records (a CSV without a text column is one section)."""
    return document.format in RECORD_FORMATS and any(
        key in document.sections[0].metadata for key in NUMBER_KEYS
    )


def record_runs(document: ParsedDocument, limit: int) -> Iterator[RecordRun | Section]:
    """The records in order: runs to pack, and, alone, each record longer than `limit` (its metadata
    listed as a packed chunk's is)."""
    text, sections = document.text, document.sections
    run_start, run_key = 0, None
    for index, section in enumerate(sections):
        key = _shared(section.metadata)
        span = strip(text, section.start, section.end)
        if span is None or span[1] - span[0] > limit:
            if index > run_start:
                yield RecordRun(run_start, index)
            yield replace(section, metadata=packed_metadata([section]))
            run_start, run_key = index + 1, None
            continue
        if key != run_key and index > run_start:
            yield RecordRun(run_start, index)
            run_start = index
        run_key = key
    if run_start < len(sections):
        yield RecordRun(run_start, len(sections))


def run_units(text: str, sections: Sequence[Section], run: RecordRun, meter: Meter) -> Iterator[Unit]:
    """One unit per record of the run: records are packed whole, never cut between chunks."""
    for index in range(run.first, run.stop):
        meter.step()
        section = sections[index]
        span = strip(text, section.start, section.end)
        if span is not None:
            yield Unit(span[0], span[1], heading=False)


def packed_metadata(sections: Sequence[Section]) -> Metadata:
    """The metadata the records share, with each one's number and id listed in order."""
    first = sections[0].metadata
    number_key = next((key for key in NUMBER_KEYS if key in first), NUMBER_KEYS[0])
    metadata: Metadata = {name: value for name, value in first.items() if name not in (number_key, ID_FIELD)}
    metadata[f"{number_key}s"] = [_scalar(section.metadata.get(number_key)) for section in sections]
    ids = [_scalar(section.metadata.get(ID_FIELD)) for section in sections]
    if any(given is not None for given in ids):
        metadata["ids"] = ids
    return metadata


def split_packed(chunk: Chunk) -> tuple[Chunk, Chunk]:
    """Halve a packed chunk between the records nearest its middle, each half listing its own."""
    middle = chunk.start + len(chunk.text) // 2
    at = min(range(1, len(chunk.parts)), key=lambda n: abs(chunk.parts[n] - middle))
    halves = []
    for start, end, parts, picked in (
        (chunk.start, chunk.parts[at], chunk.parts[:at], slice(0, at)),
        (chunk.parts[at], chunk.end, chunk.parts[at:], slice(at, None)),
    ):
        span = strip(chunk.text, start - chunk.start, end - chunk.start) or (0, end - start)
        metadata = {
            name: value[picked] if isinstance(value, list) else value
            for name, value in chunk.metadata.items()
        }
        halves.append(
            replace(
                chunk,
                text=chunk.text[span[0] : span[1]],
                start=chunk.start + span[0],
                end=chunk.start + span[1],
                metadata=metadata,
                parts=parts,
            )
        )
    return halves[0], halves[1]


def _shared(metadata: Metadata) -> tuple[tuple[str, type, object], ...]:
    """What records must have equal to share a chunk: every field but the number and the id, by type
    too (1, 1.0 and true are equal in Python, not to a jsonb filter)."""
    return tuple(
        (name, type(value), value)
        for name, value in sorted(metadata.items())
        if name not in NUMBER_KEYS and name != ID_FIELD
    )


def _scalar(value: MetadataScalar | list[MetadataScalar]) -> MetadataScalar:
    return None if isinstance(value, list) else value
