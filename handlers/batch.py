"""The one batch loop of the batch triggers (Object Storage, Message Queue).

Each message is accepted (parsed, checked, turned into the core call it asks for) or set aside (an
ignored event, a parked message); the accepted run concurrently under the instance's one rate
limiter; if any failed, the first failure is raised after all have finished. A batch is
all-or-nothing for the platform: it delivers the whole batch again, and the documents that succeeded
skip cheaply because their manifests match.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from embedding_pipeline.clients.message_queue import MAX_BATCH_ENTRIES
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()


@dataclass(frozen=True, slots=True)
class Accepted:
    """The core call one message asks for; `sweep` and `bucket`: a reference a sweep queued, whose
    outcome that sweep is told."""

    work: Awaitable[DocumentResult]
    sweep: str | None = None
    bucket: str | None = None


@dataclass(frozen=True, slots=True)
class BatchDone:
    done: list[tuple[Accepted, DocumentResult]]
    set_aside: int  # messages ignored or parked


Accept = Callable[[int, Any], Awaitable[Accepted | None]]  # (position, raw message) → the work, or None


async def process_batch(invocation: Invocation, messages: list[Any], accept: Accept) -> BatchDone:
    """Accept each message, run what was accepted side by side, and raise the first failure last."""
    if len(messages) >= MAX_BATCH_ENTRIES:
        # A full batch says more were waiting: another invocation likely follows at once.
        invocation.embedder.expect_more_work()
    accepted: list[Accepted] = []
    for number, raw in enumerate(messages):
        if (item := await accept(number, raw)) is not None:
            accepted.append(item)
    outcomes = await asyncio.gather(*(item.work for item in accepted), return_exceptions=True)
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    for failure in failures:
        log.error("document_failed", error=failure)
    if failures:
        raise failures[0]
    done = [
        (item, outcome)
        for item, outcome in zip(accepted, outcomes, strict=True)
        if isinstance(outcome, DocumentResult)
    ]
    return BatchDone(done, len(messages) - len(accepted))


def summary(result: DocumentResult) -> dict[str, Any]:
    return {name: value for name, value in asdict(result).items() if value is not None}
