"""One invocation's use of the embeddings API: its credentials, what it used, one request per
distinct text, and its membership among the instances that share the quota.

Bulk work (documents) joins the instances sharing the folder's quota before its first request
(quota_share.py); interactive work (the HTTP API, a search's query) does not. The membership ends
with the invocation, unless the handler said more bulk work follows at once (a full batch): then the
instance keeps its place for its next invocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from embedding_pipeline.clients.credentials import Credentials
from embedding_pipeline.clients.embeddings import Embedding, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.shared_embeddings import SharedEmbeddings

if TYPE_CHECKING:
    from embedding_pipeline.quota_share import QuotaShare


class Embedder:
    def __init__(
        self,
        client: EmbeddingsClient,
        credentials: Credentials,
        deadline: Deadline,
        *,
        quota_share: Callable[[str], QuotaShare] | None = None,
        meet_in: str | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._deadline = deadline
        self._make_share = quota_share  # None: this instance paces alone
        self._meet_in = meet_in  # where the instances sharing the quota meet (works_in)
        self._share: QuotaShare | None = None
        self._more_work_follows = False
        self._shared = SharedEmbeddings()
        self.usage = EmbeddingsUsage()

    async def embed_text(
        self, text: str, model: str, *, dimensions: int | None = None, interactive: bool = False
    ) -> Embedding:
        """The text's vector; `dimensions` asks the model for another size than EMBEDDINGS_DIMENSIONS."""
        if not interactive and self._make_share is not None and self._meet_in is not None:
            if self._share is None:
                self._share = self._make_share(self._meet_in)
            await self._share.join()
        return await self._client.embed(
            text,
            model=model,
            authorization=self._credentials.embeddings_authorization(),
            usage=self.usage,
            deadline=self._deadline,
            dimensions=dimensions,
            interactive=interactive,
        )

    def works_in(self, bucket: str) -> None:
        """Bulk work of this invocation writes to `bucket`: with no default bucket configured, the
        instances sharing the quota meet there, as every instance working on this bucket does."""
        if self._meet_in is None:
            self._meet_in = bucket

    async def embed_once(self, text: str, text_hash: str, model: str) -> tuple[Embedding, bool]:
        """Like `embed_text`, sharing one request among the documents of this invocation that hold
        the same text; True if this call paid for the vector."""
        return await self._shared.embed(model, text_hash, lambda: self.embed_text(text, model))

    def expect_more_work(self) -> None:
        """More bulk work is likely to follow at once (a full batch): keep this instance's place
        among those sharing the quota for its next invocation."""
        self._more_work_follows = True

    async def close(self) -> None:
        """The invocation ends: its instance no longer takes a part of the quota (or keeps its place)."""
        if self._share is not None:
            await self._share.leave(keep_place=self._more_work_follows)
