"""What the batch triggers (storage, queue) share: run messages together, fail late, summarise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import asdict
from typing import Any

from embedding_pipeline.logs import get_logger
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()

# The most messages one receive gives (YMQ's ReceiveMessage, the storage trigger's batch): a batch
# this full says more were waiting, so another invocation likely follows at once.
FULL_BATCH = 10


def is_full(messages: list[Any]) -> bool:
    return len(messages) >= FULL_BATCH


async def gather_results(tasks: list[Awaitable[DocumentResult]]) -> list[DocumentResult]:
    """Run a batch concurrently; if any failed, raise the first failure after all have finished.

    The trigger then delivers the whole batch again, and the documents that succeeded skip cheaply
    because their manifests match.
    """
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [item for item in outcomes if isinstance(item, BaseException)]
    for failure in failures:
        log.error("document_failed", error=failure)
    if failures:
        raise failures[0]
    return [item for item in outcomes if isinstance(item, DocumentResult)]


def summary(result: DocumentResult) -> dict[str, Any]:
    return {name: value for name, value in asdict(result).items() if value is not None}
