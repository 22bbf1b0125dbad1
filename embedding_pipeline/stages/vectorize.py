"""The embedding stage: chunks in, one vector per chunk out, paying for each distinct text once.

Vectors already known (from the previous records of the same source or from a checkpoint of an
unfinished run) are reused by the text's hash. Identical texts inside a document are embedded once.
Each result says whether this version of the document paid for its vector (in this invocation or,
through the checkpoint, an earlier one), so the manifest can report what the document truly cost.
A text the API refuses as too long is split in two and the halves embedded instead, so one chunk can
come back as several. Work stops early, cleanly, when the invocation's deadline comes or a request
fails for good; what was embedded by then has already gone to `on_embedded` (the checkpoint).
Results go out in document order while later chunks are still being embedded, so the records of a
large document are written as the run goes rather than held until its end.
"""

from __future__ import annotations

import asyncio
import hashlib
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import EmbeddingsRejected, InputTooLong, OutOfTime, PermanentError
from embedding_pipeline.stages.documents import Chunk, split_chunk

MAX_SPLIT_DEPTH = 6


def content_hash(text: str) -> str:
    """A text's identity for reuse: the same text (with the same model) is never paid for twice."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KnownVector:
    vector: array[float]
    tokens: int
    # Paid for this version of the document (a checkpoint of an earlier invocation), not reused from
    # its previous records: the manifest bills it.
    paid: bool = False


@dataclass(frozen=True, slots=True)
class EmbeddedChunk:
    chunk: Chunk
    text_hash: str
    vector: array[float]
    tokens: int
    reused: bool  # not paid for by this version of the document (the same text may repeat: see records)


@dataclass(frozen=True, slots=True)
class _Piece:
    """Part of a chunk's text (all of it unless the API asked for a split), relative to the chunk."""

    start: int
    end: int
    text_hash: str
    vector: array[float]
    tokens: int
    reused: bool


# The text's vector, and whether this call paid for it (False: another document's request, made in
# the same invocation for the same text, answered it).
EmbedText = Callable[[str], Awaitable[tuple[Embedding, bool]]]
OnEmbedded = Callable[[str, Embedding], Awaitable[None]]
Emit = Callable[[EmbeddedChunk], Awaitable[None]]

_SPENT = Chunk("", 0, 0, {})  # stands in for a chunk already emitted, so its text can be freed


class LaterVectors(Protocol):
    """Vectors held elsewhere (the records a re-upload replaces), read only when the writer reaches
    the chunk that needs one, so that memory never holds them all (outputs/previous.py)."""

    def holds(self, text_hash: str) -> bool: ...

    def want(self, text_hash: str) -> None: ...

    async def take(self, text_hash: str) -> KnownVector | None: ...


_LATER: list[_Piece] = []  # pieces not read yet: the vector comes from LaterVectors when emitted


async def stream_embedded(
    chunks: list[Chunk],
    *,
    known: dict[str, KnownVector],
    embed: EmbedText,
    concurrency: int,
    deadline: Deadline,
    on_embedded: OnEmbedded,
    emit: Emit,
    later: LaterVectors | None = None,
) -> None:
    """Embed every chunk and hand each result to `emit` in document order, as soon as it and every
    chunk before it are ready. A chunk whose vector `later` holds is read from it when its turn to
    be emitted comes (embedded after all, should `later` no longer hold it).

    Memory is bounded by how far the workers run ahead of the oldest unfinished chunk, not by the
    document: `chunks` is consumed (each entry is replaced once emitted, freeing its text), and a
    vector leaves `pieces` and `known` once no later chunk has the same text.
    """
    hashes = [content_hash(chunk.text) for chunk in chunks]
    uses_left = Counter(hashes)
    pieces: dict[str, list[_Piece] | None] = {}  # None: not embedded yet
    to_embed: list[int] = []  # indices, not chunks: an emitted chunk must not stay referenced here
    for index, (text_hash, chunk) in enumerate(zip(hashes, chunks, strict=True)):
        if text_hash in pieces:
            continue
        if (hit := known.get(text_hash)) is not None:
            pieces[text_hash] = [_reused(hit, text_hash, 0, len(chunk.text))]
        elif later is not None and later.holds(text_hash):
            pieces[text_hash] = _LATER
            later.want(text_hash)
        else:
            pieces[text_hash] = None
            to_embed.append(index)

    emitted = 0
    emitting = asyncio.Lock()  # one emitter at a time keeps the order

    async def drain() -> None:
        nonlocal emitted
        async with emitting:
            while emitted < len(chunks) and (ready := pieces.get(hashes[emitted])) is not None:
                chunk, text_hash = chunks[emitted], hashes[emitted]
                if ready is _LATER:
                    ready = await _read_later(chunk, text_hash, later, embed_piece)
                    pieces[text_hash] = ready
                for item in _assemble(chunk, ready):
                    await emit(item)
                chunks[emitted] = _SPENT
                uses_left[text_hash] -= 1
                if uses_left[text_hash] == 0:
                    del pieces[text_hash]
                    known.pop(text_hash, None)
                emitted += 1

    embed_piece = _PieceEmbedder(known, embed, on_embedded)
    queue = iter(to_embed)
    failures: list[Exception] = []

    async def worker() -> None:
        for index in queue:  # one shared iterator: each chunk is taken by one worker
            if failures:
                return
            if deadline.expired():
                failures.append(OutOfTime("the invocation's time budget ran out while embedding"))
                return
            try:
                pieces[hashes[index]] = await embed_piece(chunks[index])
                await drain()
            except Exception as exc:  # every worker stops at the next chunk; the first cause is raised
                failures.append(exc)
                return

    await drain()  # a prefix of reused vectors goes out before any request
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(to_embed)))))
    if failures:
        # A transient cause wins over a permanent one: a retry may succeed, a parked record would not.
        transient = [f for f in failures if not isinstance(f, PermanentError)]
        raise (transient or failures)[0]
    await drain()


@dataclass(frozen=True, slots=True)
class _PieceEmbedder:
    known: dict[str, KnownVector]
    embed: EmbedText
    on_embedded: OnEmbedded

    async def __call__(self, chunk: Chunk, offset: int = 0, depth: int = 0) -> list[_Piece]:
        """The chunk's vector, or if the API refuses it as too long, the vectors of its two halves."""
        text_hash = content_hash(chunk.text)
        if (hit := self.known.get(text_hash)) is not None:
            return [_reused(hit, text_hash, offset, offset + len(chunk.text))]
        try:
            embedding, paid = await self.embed(chunk.text)
        except InputTooLong as exc:
            if depth >= MAX_SPLIT_DEPTH or len(chunk.text) < 2:
                raise EmbeddingsRejected(f"text still too long after {depth} splits: {exc}") from None
            left, right = split_chunk(chunk)
            head = await self(left, offset + (left.start - chunk.start), depth + 1)
            tail = await self(right, offset + (right.start - chunk.start), depth + 1)
            return head + tail
        self.known[text_hash] = KnownVector(embedding.vector, embedding.tokens, paid=paid)
        await self.on_embedded(text_hash, embedding)
        end = offset + len(chunk.text)
        return [_Piece(offset, end, text_hash, embedding.vector, embedding.tokens, reused=not paid)]


async def _read_later(
    chunk: Chunk, text_hash: str, later: LaterVectors | None, embed_piece: _PieceEmbedder
) -> list[_Piece]:
    hit = await later.take(text_hash) if later is not None else None
    if hit is None:  # the records changed since they were read: pay for it after all
        return await embed_piece(chunk)
    return [_reused(hit, text_hash, 0, len(chunk.text))]


def _reused(hit: KnownVector, text_hash: str, start: int, end: int) -> _Piece:
    return _Piece(start, end, text_hash, hit.vector, hit.tokens, reused=not hit.paid)


def _assemble(chunk: Chunk, pieces: list[_Piece]) -> list[EmbeddedChunk]:
    out: list[EmbeddedChunk] = []
    for piece in pieces:
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
