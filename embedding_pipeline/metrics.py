"""What one invocation counts for Yandex Monitoring: a few counters by name and bucket.

The core adds where each fact is known: a document embedded, unchanged or parked
(pipeline/endings.py), a continuation queued (pipeline/objects.py), an index write left pending
(endings.py, from vector_index/follow.py's answer), what a reconcile page found (reconcile/walk.py);
the embeddings API's use (requests, tokens, 429s, retries) is added once, when the invocation ends.
Runtime.invocation then sends them in one request (clients/monitoring.py). Nothing here does I/O.

Each counter is labelled with the trigger that started the invocation and the bucket the work was
about. The API's use cannot be split by bucket (one request may serve documents of two buckets,
shared_embeddings.py): it goes to the bucket whose outputs the invocation opened, "none" when it
opened none (an HTTP embeddings call, a search) and "several" when more than one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from embedding_pipeline.clients.embeddings_requests import EmbeddingsUsage
    from embedding_pipeline.clients.ocr import OcrUsage

Trigger = Literal["storage", "queue", "timer", "http", "unknown"]
Counter = Literal[
    "documents_embedded",
    "documents_unchanged",
    "documents_parked",
    "api_requests",
    "tokens",
    "throttled",  # the embeddings API's 429s
    "retries",
    "reconcile_missing",
    "reconcile_stale",
    "reconcile_orphaned",
    "queue_continuations",
    "index_failures",  # an index write that failed, left marked for reconcile
    "ocr_pages",  # pages sent to Vision OCR (what it bills)
    "ocr_requests",
    "ocr_throttled",  # Vision OCR's 429s
]
COUNTERS: tuple[Counter, ...] = get_args(Counter)
NO_BUCKET = "none"
SEVERAL_BUCKETS = "several"
# What a reconcile page finds (reconcile/totals.py's `found`), by the counter it is added to.
_FINDINGS: dict[str, Counter] = {
    "missing": "reconcile_missing",
    "stale": "reconcile_stale",
    "orphaned": "reconcile_orphaned",
}


@dataclass(frozen=True, slots=True)
class Point:
    name: Counter
    trigger: Trigger
    bucket: str
    value: int


@dataclass(slots=True)
class InvocationMetrics:
    trigger: Trigger = "unknown"
    _counts: dict[tuple[Counter, str], int] = field(default_factory=dict)
    _buckets: set[str] = field(default_factory=set)  # whose outputs this invocation opened

    def about(self, bucket: str) -> None:
        """The invocation works on `bucket` (it opened its outputs)."""
        self._buckets.add(bucket)

    def add(self, name: Counter, bucket: str | None, count: int = 1) -> None:
        key = (name, bucket or NO_BUCKET)
        self._counts[key] = self._counts.get(key, 0) + count

    def add_findings(self, bucket: str, found: Mapping[str, int]) -> None:
        """What a reconcile page found (missing, stale, orphaned documents)."""
        for finding, counter in _FINDINGS.items():
            self.add(counter, bucket, found.get(finding, 0))

    def add_usage(self, usage: EmbeddingsUsage) -> None:
        """The embeddings API's use by the whole invocation, to the bucket it worked on."""
        bucket = self.bucket
        self.add("api_requests", bucket, usage.requests)
        self.add("tokens", bucket, usage.tokens)
        self.add("throttled", bucket, usage.throttled)
        self.add("retries", bucket, usage.retries)

    def add_ocr_usage(self, usage: OcrUsage) -> None:
        """Vision OCR's use by the whole invocation, to the bucket it worked on."""
        bucket = self.bucket
        self.add("ocr_pages", bucket, usage.pages)
        self.add("ocr_requests", bucket, usage.requests)
        self.add("ocr_throttled", bucket, usage.throttled)

    @property
    def bucket(self) -> str:
        if len(self._buckets) > 1:
            return SEVERAL_BUCKETS
        return next(iter(self._buckets), NO_BUCKET)

    def points(self) -> list[Point]:
        """The counters that are not zero, in a stable order."""
        return [
            Point(name, self.trigger, bucket, value)
            for (name, bucket), value in sorted(self._counts.items())
            if value
        ]
