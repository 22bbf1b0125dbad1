"""What one invocation works with: its credentials' clients, its deadline, and what it used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embedding_pipeline.clients.credentials import Credentials
from embedding_pipeline.clients.embeddings import Embedding, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.clients.message_queue import MessageQueue
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.settings import Settings
from embedding_pipeline.shared_embeddings import SharedEmbeddings

if TYPE_CHECKING:
    from embedding_pipeline.outputs.store import BucketOutputs


@dataclass(slots=True)
class InvocationTotals:
    """Documents and chunks one invocation wrote, for its summary line."""

    documents: int = 0
    chunks: int = 0
    reused: int = 0


@dataclass(frozen=True, slots=True)
class Invocation:
    settings: Settings
    storage: ObjectStorage
    embeddings: EmbeddingsClient
    credentials: Credentials = field(repr=False)
    deadline: Deadline
    queue: MessageQueue | None = None
    usage: EmbeddingsUsage = field(default_factory=EmbeddingsUsage)
    totals: InvocationTotals = field(default_factory=InvocationTotals)
    shared: SharedEmbeddings = field(default_factory=SharedEmbeddings, repr=False)

    async def embed_text(self, text: str, model: str, *, dimensions: int | None = None) -> Embedding:
        """The text's vector; `dimensions` asks the model for another size than EMBEDDINGS_DIMENSIONS."""
        return await self.embeddings.embed(
            text,
            model=model,
            authorization=self.credentials.embeddings_authorization(),
            usage=self.usage,
            deadline=self.deadline,
            dimensions=dimensions,
        )

    async def embed_once(self, text: str, text_hash: str, model: str) -> tuple[Embedding, bool]:
        """Like `embed_text`, sharing one request among the documents of this invocation that hold
        the same text; True if this call paid for the vector."""
        return await self.shared.embed(model, text_hash, lambda: self.embed_text(text, model))

    def outputs(self, source_bucket: str) -> BucketOutputs:
        """The outputs of sources in `source_bucket` (in OUTPUT_BUCKET if set)."""
        # Imported here: the HTTP embeddings route writes no outputs, and its cold start skips them.
        from embedding_pipeline.outputs.layout import OutputLayout  # noqa: PLC0415
        from embedding_pipeline.outputs.store import BucketOutputs  # noqa: PLC0415

        return BucketOutputs(self.storage, OutputLayout.for_source(self.settings, source_bucket))
