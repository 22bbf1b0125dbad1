"""What a sweep found and did, summed over its pages: the body of its report.

Pages add into one `Totals`; the sweep's state carries it between invocations (state.py), and the
sweep's report is it with the sweep's own fields around it (sweep.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from embedding_pipeline.redact import redact

MAX_REPORTED_FAILURES = 100
FOUND_KEYS = (
    "sources",
    "missing",
    "stale",
    "orphaned",
    "parked_retry",
    "parked",
    "refused",
    "inline_unfinished",
)
_INDEX_COUNTS = (
    "documents",
    "missing",
    "stale",
    "current",
    "orphaned",
    "written",
    "written_partly",
    "removed",
    "failed",
    "keywords_filled",  # rows of a table made before keyword search given their keyword form
)


class Totals(BaseModel):
    pages: int = 0
    found: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(FOUND_KEYS, 0))
    outcomes: dict[str, int] = Field(default_factory=dict)
    failed: int = 0
    failures: list[dict[str, str]] = Field(default_factory=list)
    orphans_removed: int = 0
    checkpoints_removed: int = 0  # left by runs that ended, beside documents already current
    queued: int = 0  # documents sent to the queue for its instances to embed
    accounted: int = 0  # of those, what the instances reported back (results objects)
    tokens: int = 0  # billed tokens: embedded here, and reported back by the queue's instances
    estimated_tokens: int = 0  # for a dry run, and for what was queued (its share of the budget)
    estimated_ocr_pages: int = 0  # a dry run: pages Vision OCR would read (and bill)
    api_requests: int = 0
    storage_requests: dict[str, int] = Field(default_factory=dict)
    index: dict[str, Any] | None = None

    def found_add(self, counts: dict[str, int]) -> None:
        for name, value in counts.items():
            self.found[name] = self.found.get(name, 0) + value

    def outcome(self, outcome: str, *, tokens: int = 0, count: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        self.tokens += tokens

    def failure(self, key: str, code: str, reason: str) -> None:
        self.failed += 1
        if len(self.failures) < MAX_REPORTED_FAILURES:
            self.failures.append({"key": key, "error": code, "reason": redact(reason)[:300]})

    def requests_add(self, counts: dict[str, int]) -> None:
        for name, value in counts.items():
            self.storage_requests[name] = self.storage_requests.get(name, 0) + value

    def index_add(self, report: dict[str, Any] | None) -> None:
        """One page's index report into the sweep's: counts summed, errors kept (a few)."""
        if report is None:
            return
        if self.index is None:
            self.index = {name: 0 for name in _INDEX_COUNTS} | {"stopped_by": None, "errors": []}
        if "error" in report:
            self.index["error"] = report["error"]
            return
        for name in _INDEX_COUNTS:
            self.index[name] += int(report.get(name, 0))
        self.index["stopped_by"] = report.get("stopped_by") or self.index["stopped_by"]
        self.index["errors"] = (self.index["errors"] + list(report.get("errors", [])))[:20]

    def add(self, other: Totals) -> None:
        """Another part of the same sweep (a page, a batch of the queue's results) into this one."""
        self.pages += other.pages
        self.found_add(other.found)
        for outcome, count in other.outcomes.items():
            self.outcome(outcome, count=count)
        self.failed += other.failed
        self.failures = (self.failures + other.failures)[:MAX_REPORTED_FAILURES]
        self.orphans_removed += other.orphans_removed
        self.checkpoints_removed += other.checkpoints_removed
        self.queued += other.queued
        self.accounted += other.accounted
        self.tokens += other.tokens
        self.estimated_tokens += other.estimated_tokens
        self.estimated_ocr_pages += other.estimated_ocr_pages
        self.api_requests += other.api_requests
        self.requests_add(other.storage_requests)
        self.index_add(other.index)


def requests_since(requests: Mapping[str, int], seen: dict[str, int]) -> dict[str, int]:
    """The storage requests made since `seen` (which is brought up to now): a page's own share."""
    now = dict(requests)
    since = {op: count - seen.get(op, 0) for op, count in now.items() if count != seen.get(op, 0)}
    seen.clear()
    seen.update(now)
    return since
