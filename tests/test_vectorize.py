"""Unit: the embedding stage pays once per distinct text, reuses known vectors, splits, and stops cleanly."""

from __future__ import annotations

import asyncio
from array import array

import pytest

from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import EmbeddingsError, EmbeddingsRejected, InputTooLong, OutOfTime
from embedding_pipeline.stages.documents import Chunk
from embedding_pipeline.stages.vectorize import (
    EmbeddedChunk,
    Emit,
    KnownVector,
    content_hash,
    stream_embedded,
)


def chunks_of(*texts: str) -> list[Chunk]:
    out, offset = [], 0
    for text in texts:
        out.append(Chunk(text=text, start=offset, end=offset + len(text), metadata={}))
        offset += len(text) + 2
    return out


class Embedder:
    def __init__(self, max_chars: int | None = None, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.saved: list[str] = []
        self.max_chars = max_chars
        self.fail_on = fail_on

    async def __call__(self, text: str) -> tuple[Embedding, bool]:
        await asyncio.sleep(0)
        if self.max_chars is not None and len(text) > self.max_chars:
            raise InputTooLong("number of input tokens must be no more than 2048")
        if text == self.fail_on:
            raise EmbeddingsError("still failing")
        self.calls.append(text)
        return Embedding(array("d", [float(len(text))]), tokens=len(text.split())), True

    async def save(self, text_hash: str, _embedding: Embedding) -> None:
        self.saved.append(text_hash)


def options(**kwargs: object) -> dict[str, object]:
    return {"known": {}, "concurrency": 3, "deadline": Deadline.after(60), **kwargs}


async def run(chunks: list[Chunk], embedder: Embedder, **kwargs: object) -> list[EmbeddedChunk]:
    """Every chunk's vector(s), in document order: what `stream_embedded` emits, collected."""
    out: list[EmbeddedChunk] = []

    async def collect(item: EmbeddedChunk) -> None:
        out.append(item)

    await stream(list(chunks), embedder, collect, **kwargs)
    return out


async def stream(chunks: list[Chunk], embedder: Embedder, emit: Emit, **kwargs: object) -> None:
    await stream_embedded(chunks, embed=embedder, on_embedded=embedder.save, emit=emit, **options(**kwargs))  # type: ignore[arg-type]


async def test_each_distinct_text_is_embedded_once_and_order_is_kept() -> None:
    embedder = Embedder()
    chunks = chunks_of("alpha beta", "gamma", "alpha beta", "delta epsilon zeta")
    result = await run(chunks, embedder)
    assert sorted(embedder.calls) == sorted(["alpha beta", "gamma", "delta epsilon zeta"])
    assert [item.chunk.text for item in result] == [c.text for c in chunks]
    assert [item.tokens for item in result] == [2, 1, 2, 3]
    assert len(embedder.saved) == 3


async def test_known_vectors_are_reused_without_a_call() -> None:
    embedder = Embedder()
    known = {content_hash("gamma"): KnownVector(array("d", [42.0]), 9)}
    result = await run(chunks_of("alpha", "gamma"), embedder, known=known)
    assert embedder.calls == ["alpha"]
    reused = result[1]
    assert reused.reused
    assert reused.vector.tolist() == [42.0]
    assert reused.tokens == 9


async def test_too_long_text_is_split_into_pieces_with_exact_offsets() -> None:
    text = "First sentence here. Second sentence there. Third one to finish."
    document = "xx" + text
    chunk = Chunk(text=text, start=2, end=2 + len(text), metadata={"page": 1})
    embedder = Embedder(max_chars=25)
    result = await run([chunk], embedder)
    assert len(result) > 1
    for item in result:
        piece = item.chunk
        assert len(piece.text) <= 25
        assert document[piece.start : piece.end] == piece.text
        assert piece.metadata == {"page": 1}
    assert "".join(item.chunk.text for item in result).replace(" ", "") == text.replace(" ", "")


async def test_unsplittable_text_is_rejected_permanently() -> None:
    with pytest.raises(EmbeddingsRejected):
        await run(chunks_of("abcdefgh"), Embedder(max_chars=0))


async def test_failure_stops_workers_and_keeps_what_was_done() -> None:
    embedder = Embedder(fail_on="t5")
    texts = [f"t{i}" for i in range(40)]
    with pytest.raises(EmbeddingsError):
        await run(chunks_of(*texts), embedder, concurrency=2)
    assert 0 < len(embedder.saved) < 40
    assert len(embedder.saved) == len(embedder.calls)


async def test_expired_deadline_raises_out_of_time_before_any_call() -> None:
    embedder = Embedder()
    with pytest.raises(OutOfTime):
        await run(chunks_of("a", "b"), embedder, deadline=Deadline.after(-1))
    assert embedder.calls == []


async def test_nothing_to_embed_when_everything_is_known() -> None:
    embedder = Embedder()
    known = {content_hash("a"): KnownVector(array("d", [1.0]), 1)}
    result = await run(chunks_of("a", "a"), embedder, known=known)
    assert len(result) == 2
    assert embedder.calls == []


async def test_results_stream_out_in_order_before_the_last_chunk_is_done() -> None:
    """The first records can be written while later chunks are still in flight (bounded memory)."""
    first_emitted = asyncio.Event()
    emitted: list[str] = []

    class HoldsTheLast(Embedder):
        async def __call__(self, text: str) -> tuple[Embedding, bool]:
            if text == "last":
                await asyncio.wait_for(first_emitted.wait(), timeout=5)  # only a streaming emitter sets it
            return await super().__call__(text)

    async def emit(item: EmbeddedChunk) -> None:
        emitted.append(item.chunk.text)
        first_emitted.set()

    embedder = HoldsTheLast()
    chunks = chunks_of("first", "second", "last")
    await stream(chunks, embedder, emit)
    assert emitted == ["first", "second", "last"]


async def test_streaming_consumes_chunks_and_releases_vectors_after_their_last_use() -> None:
    embedder = Embedder()
    chunks = chunks_of("same", "other", "same", "kept elsewhere")
    known = {content_hash("reused"): KnownVector(array("d", [9.0]), 1)}
    emitted: list[tuple[str, float]] = []

    async def emit(item: EmbeddedChunk) -> None:
        emitted.append((item.chunk.text, item.vector[0]))

    await stream([*chunks, *chunks_of("reused")], embedder, emit, known=known, concurrency=2)
    assert emitted == [
        ("same", 4.0),
        ("other", 5.0),
        ("same", 4.0),
        ("kept elsewhere", 14.0),
        ("reused", 9.0),
    ]
    assert sorted(embedder.calls) == ["kept elsewhere", "other", "same"]  # "same" paid once
    assert known == {}  # every vector left memory once no later chunk needed it


async def test_streaming_consumes_the_chunk_list() -> None:
    embedder = Embedder()
    chunks = chunks_of("one", "two")

    async def emit(_item: EmbeddedChunk) -> None:
        return None

    await stream(chunks, embedder, emit, concurrency=1)
    assert [chunk.text for chunk in chunks] == ["", ""]  # texts freed as their records went out


class Later:
    """Vectors of previous records, handed out one at a time; `gone` ones the records lost."""

    def __init__(self, texts: list[str], gone: tuple[str, ...] = ()) -> None:
        self.vectors = {content_hash(t): KnownVector(array("d", [-float(len(t))]), 7) for t in texts}
        self.gone = {content_hash(t) for t in gone}
        self.taken: list[str] = []

    def holds(self, text_hash: str) -> bool:
        return text_hash in self.vectors

    def want(self, text_hash: str) -> None:
        pass

    async def take(self, text_hash: str) -> KnownVector | None:
        self.taken.append(text_hash)
        return None if text_hash in self.gone else self.vectors[text_hash]


async def test_previous_vectors_are_taken_in_document_order_when_their_turn_comes() -> None:
    embedder = Embedder()
    later = Later(["kept one", "kept two"])
    chunks = chunks_of("kept one", "new text", "kept two", "kept one")
    result = await run(chunks, embedder, later=later)
    assert embedder.calls == ["new text"]
    assert later.taken == [content_hash("kept one"), content_hash("kept two")]  # once each, in order
    assert [list(item.vector) for item in result] == [[-8.0], [8.0], [-8.0], [-8.0]]
    assert [item.reused for item in result] == [True, False, True, True]


async def test_a_previous_vector_the_records_no_longer_hold_is_paid_for() -> None:
    embedder = Embedder()
    later = Later(["kept one", "lost"], gone=("lost",))
    result = await run(chunks_of("kept one", "lost"), embedder, later=later)
    assert embedder.calls == ["lost"]
    assert [list(item.vector) for item in result] == [[-8.0], [4.0]]
