"""What the pipeline reports for each document it was asked about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal[
    "embedded",  # records and manifest written
    "unchanged",  # the manifest already matches the source and settings: nothing to pay
    "parked",  # the input can never succeed: an error record says why
    "missing",  # the source is gone
    "superseded",  # the source changed while this run worked; the newer event finishes the job
    "refused",  # a key that cannot have outputs: only its error record, under _errors/_refused/
    "removed",  # a deleted source's outputs were removed
    "kept",  # a delete event for a source that exists again
    "continued",  # out of time: the rest was handed to the queue, resuming from the checkpoint
    "would_embed",  # dry run: what embedding would cost
    "would_park",  # dry run: the input can never succeed (nothing was written)
    "would_rewrite",  # dry run: only the metadata changed: records and manifest rewritten, 0 requests
    "reconciled",  # a step of a reconcile sweep ran (or found it had nothing to do)
    "claimed",  # another run embeds the document now (outputs/claims.py): nothing was paid
    "deferred",  # claimed elsewhere, and sent back to the queue to be looked at when the claim lapses
]


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
    index: str | None = None  # with a vector index: "indexed", or "pending" (reconcile writes it)
    text_chars: int | None = None  # a dry run: characters of the texts it would pay for
    retry_after_s: int | None = None  # claimed: when the other run's claim lapses at the latest
    ocr_pages: int | None = None  # a dry run: pages Vision OCR would read (and bill) first
