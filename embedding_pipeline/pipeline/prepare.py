"""A document's chunks, before anything is paid for: its source loaded and parsed, chunked, and
checked against the caps; with the chunks of the records a re-upload replaces, which the chunker
keeps where the new text still holds them (embed.py pays for the rest and writes them).
"""

from __future__ import annotations

from dataclasses import dataclass

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, OcrPending, OutOfTime
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.ocr.reader import NO_OCR, OcrTally
from embedding_pipeline.outputs.models import Manifest, Recipe, SourceRef
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.pipeline.sources import DocumentSource
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import (
    Chunk,
    ChunkingSettings,
    Limits,
    ParsedDocument,
    PreviousChunks,
    chunk_document,
)
from embedding_pipeline.stages.documents.model import has_text


def chunking_of(settings: Settings) -> ChunkingSettings:
    return ChunkingSettings(
        max_tokens=settings.chunk_max_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        chars_per_token=settings.chars_per_token,
        pack_records=settings.pack_records,
    )


async def previous_chunks(
    outputs: DocumentOutputs, previous: Manifest | None, recipe: Recipe
) -> PreviousChunks | None:
    """The chunks of the records a re-upload replaces: kept where still found in the document
    when the chunking settings are the same (a change of them gets the canonical chunking), and
    their vectors reused wherever the same text comes back. Vectors of another shape (another model,
    another length) are no use, whatever the records claim."""
    if previous is None or previous.model != recipe.model or previous.dimensions != recipe.dimensions:
        return None
    return await outputs.previous_chunks(recipe)


@dataclass(frozen=True, slots=True)
class Prepared:
    ref: SourceRef  # the version read
    format: str
    chunks: list[Chunk]
    ocr: OcrTally = NO_OCR  # what reading its scanned pages cost; a dry run: the pages it would send


async def prepare_chunks(
    invocation: Invocation,
    source: DocumentSource,
    limits: Limits,
    previous: PreviousChunks | None,
) -> Prepared | None:
    """The document's chunks (None: the source is gone); the parsed text itself is let go (20 MB of
    text is ~40 MB in memory).

    Parsing cannot resume part-way: a document that runs out of time here although the invocation
    had most of its time left would run out in every invocation, so it is too large, not unlucky.
    """
    deadline = invocation.deadline
    whole_invocation = deadline.mostly_left()
    try:
        loaded = await source.load(limits)
        if loaded is None:
            return None
        # Reading scans (pipeline/ocr.py) may have spent most of it: chunking then resumes afresh.
        whole_invocation = whole_invocation and deadline.mostly_left()
        document = loaded.document
        if loaded.ocr.to_recognise and not has_text(document.text):
            chunks = []  # a dry run of a scan: what its pages say is not known before they are read
        else:
            chunks = _checked_chunks(document, invocation.settings, limits, previous)
        return Prepared(loaded.ref, document.format, chunks, loaded.ocr)
    except OcrPending:
        raise  # Vision still reads its pages: looked at again later
    except OutOfTime:
        if not whole_invocation:
            raise  # a fresh invocation (the retry, the hand-over) starts with all of its time
        raise DocumentTooLarge(
            f"parsing and chunking did not finish within the invocation's {deadline.budget_s:.0f} s: "
            "split the document, or raise the function's timeout"
        ) from None


def _checked_chunks(
    document: ParsedDocument, settings: Settings, limits: Limits, previous: PreviousChunks | None
) -> list[Chunk]:
    chunks = chunk_document(document, chunking_of(settings), limits, previous)
    if not chunks:
        raise EmptyDocument("the document has no text to embed")
    if len(chunks) > settings.max_chunks_per_document:
        raise DocumentTooLarge(
            f"{len(chunks)} chunks is over MAX_CHUNKS_PER_DOCUMENT={settings.max_chunks_per_document}"
        )
    return chunks
