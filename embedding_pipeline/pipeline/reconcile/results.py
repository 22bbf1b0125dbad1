"""What the queue's instances did with the documents a sweep queued: told back through the bucket.

An instance whose batch held references a sweep queued writes, once the batch has succeeded, one
small object per sweep (`_sweeps/{prefix_id}/{sweep}/{batch}.json`: outcomes, tokens, requests). The
sweep's next step reads them into its totals and deletes them: the names counted are kept in the
state until the next step deletes them, so a crash between the two counts nothing twice. A batch
that raised writes nothing (the queue delivers it again, and the delivery that succeeds reports);
what it paid before it raised stays in the documents' manifests.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from embedding_pipeline import foreign
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.store import SMALL_OUTPUT_MAX_BYTES
from embedding_pipeline.pipeline.reconcile.state import SweepState
from embedding_pipeline.pipeline.reconcile.totals import Totals
from embedding_pipeline.pipeline.result import DocumentResult

log = get_logger()

_RESULTS_PER_STEP = 1000  # a step counts at most this many batches: the rest wait for the next


Count = Annotated[int, Field(ge=0, le=10**12)]  # what no batch exceeds: a foreign object counts nothing


class BatchResults(BaseModel):
    documents: Count = 0
    outcomes: dict[str, Count] = {}
    tokens: Count = 0
    api_requests: Count = 0


async def report_to_sweeps(invocation: Invocation, done: Iterable[tuple[str, str, DocumentResult]]) -> None:
    """`done`: (source bucket, sweep tag, result) of each reference of a finished batch that a sweep
    queued. A failure to write is logged: the sweep's report then misses these, nothing else."""
    by_sweep: dict[tuple[str, str], BatchResults] = {}
    for bucket, tag, result in done:
        batch = by_sweep.setdefault((bucket, tag), BatchResults())
        batch.documents += 1
        batch.outcomes[result.outcome] = batch.outcomes.get(result.outcome, 0) + 1
        batch.tokens += result.tokens
        batch.api_requests += result.embedded
    for (bucket, tag), batch in by_sweep.items():
        prefix_id, _, sweep = tag.partition("/")
        layout = invocation.outputs(bucket).layout
        key = layout.sweep_result(prefix_id, sweep, uuid.uuid4().hex)
        try:
            await invocation.storage.put(
                layout.bucket, key, batch.model_dump_json().encode(), content_type="application/json"
            )
        except StorageError as exc:
            log.warning("sweep_results_not_written", sweep=tag, reason=str(exc))


async def collect(storage: ObjectStorage, layout: OutputLayout, state: SweepState) -> int:
    """Fold the batches reported since the last step into `state.totals`; how many documents.
    Deletes the batches counted at the last step first (the state that counted them was written)."""
    folder = layout.sweep_results(state.prefix_id, state.sweep)
    await _delete(storage, layout.bucket, state.counted)
    state.counted = []
    names = []
    async for info in storage.list_objects(layout.bucket, folder):
        names.append(info.key)
        if len(names) >= _RESULTS_PER_STEP:
            break
    bodies = await asyncio.gather(
        *(storage.get(layout.bucket, name, max_bytes=SMALL_OUTPUT_MAX_BYTES) for name in names)
    )
    documents = 0
    for name, body in zip(names, bodies, strict=True):
        state.counted.append(name)
        try:
            batch = BatchResults.model_validate_json(body or b"")
        except ValidationError:
            foreign.ignored(name, "not a batch's results")
            continue  # not ours to count
        part = Totals(outcomes=batch.outcomes, tokens=batch.tokens, api_requests=batch.api_requests)
        part.accounted = batch.documents
        state.totals.add(part)
        documents += batch.documents
    return documents


async def discard(storage: ObjectStorage, layout: OutputLayout, state: SweepState) -> None:
    """The sweep is over: whatever is left of its results goes (counted, or too late to count)."""
    await _delete(storage, layout.bucket, state.counted)
    folder = layout.sweep_results(state.prefix_id, state.sweep)
    await _delete(
        storage, layout.bucket, [info.key async for info in storage.list_objects(layout.bucket, folder)]
    )


async def _delete(storage: ObjectStorage, bucket: str, keys: list[str]) -> None:
    for key in keys:
        await storage.delete(bucket, key)
