"""The embedding stage: chunks in, one vector per chunk out, paying for each distinct text once.

Vectors already known (from the previous records of the same source or from a checkpoint of an
unfinished run) are reused by the text's hash. Identical texts inside a document are embedded once.
A text the API refuses as too long is split in two and the halves embedded instead, so one chunk can
come back as several. Work stops early, cleanly, when the invocation's deadline comes or a request
fails for good; what was embedded by then has already gone to `on_embedded` (the checkpoint).
"""

from __future__ import annotations

import asyncio
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.documents import Chunk, split_chunk
from embedding_pipeline.embeddings import Embedding
from embedding_pipeline.errors import EmbeddingsRejected, InputTooLong, OutOfTime, PermanentError
from embedding_pipeline.records import content_hash

MAX_SPLIT_DEPTH = 6


@dataclass(frozen=True, slots=True)
class KnownVector:
    vector: array[float]
    tokens: int


@dataclass(frozen=True, slots=True)
class EmbeddedChunk:
    chunk: Chunk
    text_hash: str
    vector: array[float]
    tokens: int
    reused: bool


@dataclass(frozen=True, slots=True)
class _Piece:
    """Part of a chunk's text (all of it unless the API asked for a split), relative to the chunk."""

    start: int
    end: int
    text_hash: str
    vector: array[float]
    tokens: int
    reused: bool


EmbedText = Callable[[str], Awaitable[Embedding]]
OnEmbedded = Callable[[str, Embedding], Awaitable[None]]


async def embed_chunks(
    chunks: list[Chunk],
    *,
    known: dict[str, KnownVector],
    embed: EmbedText,
    concurrency: int,
    deadline: Deadline,
    on_embedded: OnEmbedded,
) -> list[EmbeddedChunk]:
    hashes = [content_hash(chunk.text) for chunk in chunks]
    pieces: dict[str, list[_Piece]] = {}
    to_embed: list[tuple[str, Chunk]] = []
    for text_hash, chunk in zip(hashes, chunks, strict=True):
        if text_hash in pieces:
            continue
        if text_hash in known:
            hit = known[text_hash]
            pieces[text_hash] = [_Piece(0, len(chunk.text), text_hash, hit.vector, hit.tokens, True)]
        else:
            pieces[text_hash] = []
            to_embed.append((text_hash, chunk))

    async def embed_piece(chunk: Chunk, offset: int, depth: int) -> list[_Piece]:
        text_hash = content_hash(chunk.text)
        if (hit := known.get(text_hash)) is not None:
            return [_Piece(offset, offset + len(chunk.text), text_hash, hit.vector, hit.tokens, True)]
        try:
            embedding = await embed(chunk.text)
        except InputTooLong as exc:
            if depth >= MAX_SPLIT_DEPTH or len(chunk.text) < 2:
                raise EmbeddingsRejected(f"text still too long after {depth} splits: {exc}") from None
            left, right = split_chunk(chunk)
            head = await embed_piece(left, offset + (left.start - chunk.start), depth + 1)
            tail = await embed_piece(right, offset + (right.start - chunk.start), depth + 1)
            return head + tail
        known[text_hash] = KnownVector(embedding.vector, embedding.tokens)
        await on_embedded(text_hash, embedding)
        return [
            _Piece(offset, offset + len(chunk.text), text_hash, embedding.vector, embedding.tokens, False)
        ]

    queue = iter(to_embed)
    failures: list[Exception] = []

    async def worker() -> None:
        for text_hash, chunk in queue:  # one shared iterator: each chunk is taken by one worker
            if failures:
                return
            if deadline.expired():
                failures.append(OutOfTime("the invocation's time budget ran out while embedding"))
                return
            try:
                pieces[text_hash] = await embed_piece(chunk, 0, 0)
            except Exception as exc:  # every worker stops at the next chunk; the first cause is raised
                failures.append(exc)
                return

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(to_embed)))))
    if failures:
        # A transient cause wins over a permanent one: a retry may succeed, a parked record would not.
        transient = [f for f in failures if not isinstance(f, PermanentError)]
        raise (transient or failures)[0]
    return _assemble(chunks, hashes, pieces)


def _assemble(chunks: list[Chunk], hashes: list[str], pieces: dict[str, list[_Piece]]) -> list[EmbeddedChunk]:
    out: list[EmbeddedChunk] = []
    for chunk, text_hash in zip(chunks, hashes, strict=True):
        for piece in pieces[text_hash]:
            part = chunk
            if (piece.start, piece.end) != (0, len(chunk.text)):
                part = replace(
                    chunk,
                    text=chunk.text[piece.start : piece.end],
                    start=chunk.start + piece.start,
                    end=chunk.start + piece.end,
                )
            out.append(EmbeddedChunk(part, piece.text_hash, piece.vector, piece.tokens, piece.reused))
    return out
