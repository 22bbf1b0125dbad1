"""What one invocation works with (a Run) and what it reports per document (a DocumentResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.embeddings import Embedding, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.message_queue import MessageQueue
from embedding_pipeline.settings import Settings
from embedding_pipeline.storage import ObjectStorage

if TYPE_CHECKING:
    from embedding_pipeline.documents import ChunkingSettings

Outcome = Literal[
    "embedded",  # records and manifest written
    "unchanged",  # the manifest already matches the source and settings: nothing to pay
    "parked",  # the input can never succeed: an error record says why
    "missing",  # the source is gone
    "superseded",  # the source changed while this run worked; the newer event finishes the job
    "refused",  # an unsafe key: nothing written
    "removed",  # a deleted source's outputs were removed
    "kept",  # a delete event for a source that exists again
    "continued",  # out of time: the rest was handed to the queue, resuming from the checkpoint
    "would_embed",  # dry run: what embedding would cost
]


@dataclass(slots=True)
class RunTotals:
    """Documents and chunks one invocation wrote, for its summary line."""

    documents: int = 0
    chunks: int = 0
    reused: int = 0


@dataclass(frozen=True, slots=True)
class Run:
    settings: Settings
    storage: ObjectStorage
    embeddings: EmbeddingsClient
    authorization: str = field(repr=False)
    deadline: Deadline
    queue: MessageQueue | None = None
    usage: EmbeddingsUsage = field(default_factory=EmbeddingsUsage)
    totals: RunTotals = field(default_factory=RunTotals)

    @property
    def chunking(self) -> ChunkingSettings:
        # Imported here: the HTTP embeddings route never parses documents, so its cold start skips them.
        from embedding_pipeline.documents import ChunkingSettings  # noqa: PLC0415

        s = self.settings
        return ChunkingSettings(
            max_tokens=s.chunk_max_tokens,
            overlap_tokens=s.chunk_overlap_tokens,
            chars_per_token=s.chars_per_token,
        )

    async def embed_text(self, text: str, model: str) -> Embedding:
        return await self.embeddings.embed(
            text, model=model, authorization=self.authorization, usage=self.usage, deadline=self.deadline
        )


@dataclass(slots=True)
class DocumentResult:
    bucket: str
    key: str
    outcome: Outcome
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    tokens: int = 0
    reason: str | None = None
    output: str | None = None
