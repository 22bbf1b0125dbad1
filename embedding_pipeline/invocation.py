"""What one invocation works with: the clients with its credentials, its deadline, what it did."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embedding_pipeline.bucket_policy import output_layout
from embedding_pipeline.clients.credentials import Credentials
from embedding_pipeline.clients.message_queue import MessageQueue
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.embedder import Embedder
from embedding_pipeline.metrics import InvocationMetrics
from embedding_pipeline.settings import Settings

if TYPE_CHECKING:
    from embedding_pipeline.ocr.reader import OcrReader
    from embedding_pipeline.outputs.store import BucketOutputs
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
    embedder: Embedder
    deadline: Deadline
    queue: MessageQueue | None = None  # QUEUE_URL set: hand-overs and a sweep's fan-out go there
    vector_index: VectorIndex | None = field(default=None, repr=False)  # VECTOR_DB_DSN set
    totals: InvocationTotals = field(default_factory=InvocationTotals)
    request_id: str = "local"  # names this invocation where others read it (a claim, a sweep's lease)
    deployment: str = "local"  # which deployment writes (runtime.deployment_of): manifests say so
    credentials: Credentials | None = field(default=None, repr=False)
    metrics: InvocationMetrics = field(default_factory=InvocationMetrics)  # what it counts for Monitoring
    ocr: OcrReader | None = field(default=None, repr=False)  # Vision OCR, for pages without text
    # One run at a time per document within the invocation (a batch may hold one key twice): the
    # second waits for the first, then finds its work done. Across instances, claims do this.
    _turns: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)

    def turn_of(self, document_key: str) -> asyncio.Lock:
        return self._turns.setdefault(document_key, asyncio.Lock())

    def outputs(self, source_bucket: str) -> BucketOutputs:
        """The outputs of sources in `source_bucket` (bucket_policy.py says where they lie); the
        invocation's work is about that bucket (its metrics say so)."""
        self.metrics.about(source_bucket)
        # Imported here: the HTTP embeddings route writes no outputs, and its cold start skips them.
        from embedding_pipeline.outputs.store import BucketOutputs  # noqa: PLC0415

        return BucketOutputs(self.storage, output_layout(self.settings, source_bucket))
