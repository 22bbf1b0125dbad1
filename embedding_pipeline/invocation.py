"""What one invocation works with: its credentials' clients, its deadline, and what it used."""

from __future__ import annotations

from collections.abc import Callable
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
    from embedding_pipeline.quota_share import QuotaShare
    from embedding_pipeline.vector_index.postgres import VectorIndex


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
    # Makes this invocation's membership among the instances sharing the quota; None: pace alone.
    quota_share: Callable[[], QuotaShare] | None = field(default=None, repr=False)
    _quota_shares: list[QuotaShare] = field(default_factory=list, repr=False)  # the one made
    # More bulk work is likely to follow at once (a full batch): the instance keeps its place among
    # those sharing the quota for its next invocation (quota_share.py).
    more_work_follows: bool = False
    vector_index: VectorIndex | None = field(default=None, repr=False)  # VECTOR_DB_DSN set

    async def embed_text(
        self, text: str, model: str, *, dimensions: int | None = None, interactive: bool = False
    ) -> Embedding:
        """The text's vector; `dimensions` asks the model for another size than EMBEDDINGS_DIMENSIONS.
        Bulk work (not `interactive`) joins the instances that share the quota (quota_share.py)."""
        if not interactive and self.quota_share is not None:
            if not self._quota_shares:
                self._quota_shares.append(self.quota_share())
            await self._quota_shares[0].join()
        return await self.embeddings.embed(
            text,
            model=model,
            authorization=self.credentials.embeddings_authorization(),
            usage=self.usage,
            deadline=self.deadline,
            dimensions=dimensions,
            interactive=interactive,
        )

    async def leave_quota_share(self) -> None:
        """The invocation ends: its instance no longer takes a part of the quota."""
        for share in self._quota_shares:
            await share.leave(keep_place=self.more_work_follows)

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
