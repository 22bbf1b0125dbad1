"""Writing a document's outputs: records first, manifest last; error records; removal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from embedding_pipeline.checkpoints import Checkpoint
from embedding_pipeline.errors import PermanentError, StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.records import (
    ErrorRecord,
    Manifest,
    ManifestUsage,
    SourceRef,
    checkpoint_prefix,
    chunking_summary,
    error_key,
    manifest_key,
    record_line,
    records_key,
    utc_now,
)
from embedding_pipeline.run import DocumentResult, Run
from embedding_pipeline.storage import ObjectWriter
from embedding_pipeline.vectorize import EmbeddedChunk

log = get_logger()


@dataclass(frozen=True, slots=True)
class Target:
    """Where one document's outputs go and what they say about it."""

    source: SourceRef  # what the records describe
    out_bucket: str
    output_key: str  # outputs live at {OUTPUT_PREFIX}{output_key}.jsonl / .manifest.json
    record_id: str  # records are "{record_id}#{n}"
    model: str
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)  # carried into every record and the manifest


async def save_checkpoint(checkpoint: Checkpoint) -> None:
    """Keep what was paid for; a failure here must not hide the error that stopped the run."""
    try:
        await checkpoint.flush()
    except StorageError as exc:
        log.warning("checkpoint_not_saved", error=exc)
    else:
        log.info("checkpoint_saved", vectors=checkpoint.saved)


class RecordsSink:
    """Writes records in document order as they arrive and tallies what the manifest will report.

    The records object appears only when the `writing_records` block ends normally: a failure aborts
    the upload, and whatever the previous run wrote stays in place.
    """

    def __init__(self, writer: ObjectWriter, target: Target) -> None:
        self._writer = writer
        self._target = target
        self.chunks = 0
        self.reused = 0
        self.tokens = 0
        self.billed_tokens = 0

    async def add(self, item: EmbeddedChunk) -> None:
        target, chunk = self._target, item.chunk
        if target.metadata:
            chunk = type(chunk)(chunk.text, chunk.start, chunk.end, {**target.metadata, **chunk.metadata})
        line = record_line(
            key=target.record_id,
            number=self.chunks,
            chunk=chunk,
            text_hash=item.text_hash,
            vector=item.vector,
            tokens=item.tokens,
            model=target.model,
            source=target.source,
        )
        await self._writer.write(line)
        self.chunks += 1
        self.tokens += item.tokens
        if item.reused:
            self.reused += 1
        else:
            self.billed_tokens += item.tokens

    @property
    def etag(self) -> str | None:
        return self._writer.etag

    @property
    def usage(self) -> ManifestUsage:
        return ManifestUsage(
            tokens=self.tokens,
            billed_tokens=self.billed_tokens,
            api_requests=self.chunks - self.reused,
            reused_chunks=self.reused,
        )


@asynccontextmanager
async def writing_records(run: Run, target: Target) -> AsyncIterator[RecordsSink]:
    records_at = records_key(run.settings.output_prefix, target.output_key)
    async with run.storage.open_writer(
        target.out_bucket, records_at, content_type="application/x-ndjson"
    ) as writer:
        yield RecordsSink(writer, target)


async def finish_outputs(
    run: Run, target: Target, records: RecordsSink, *, document_format: str, checkpoint: Checkpoint
) -> DocumentResult:
    """After the records are complete: the manifest that vouches for them, then the cleanup."""
    storage, prefix = run.storage, run.settings.output_prefix
    manifest_at = manifest_key(prefix, target.output_key)
    usage = records.usage
    manifest = Manifest(
        source=target.source,
        records=SourceRef(
            bucket=target.out_bucket, key=records_key(prefix, target.output_key), etag=records.etag
        ),
        model=target.model,
        dimensions=run.settings.embeddings_dimensions,
        chunks=records.chunks,
        format=document_format,
        usage=usage,
        chunking=chunking_summary(run.chunking),
        fingerprint=target.fingerprint,
        created_at=utc_now(),
        metadata=target.metadata,
    )
    body = manifest.model_dump_json(indent=2).encode()
    await storage.put(target.out_bucket, manifest_at, body, content_type="application/json")
    await checkpoint.discard()
    await storage.delete(target.out_bucket, error_key(prefix, target.output_key))
    chunks, reused = records.chunks, records.reused
    log.info("source_embedded", chunks=chunks, reused=reused, billed_tokens=usage.billed_tokens)
    run.totals.documents += 1
    run.totals.chunks += chunks
    run.totals.reused += reused
    return DocumentResult(
        target.source.bucket,
        target.source.key,
        "embedded",
        chunks=chunks,
        embedded=usage.api_requests,
        reused=reused,
        tokens=usage.billed_tokens,
        output=manifest_at,
    )


async def park(run: Run, target: Target, exc: PermanentError, *, stale_outputs: bool) -> DocumentResult:
    """Write the error record; drop outputs that describe content which is gone."""
    prefix = run.settings.output_prefix
    record = ErrorRecord(
        source=target.source,
        error=exc.code,
        reason=str(exc),
        failed_at=utc_now(),
        fingerprint=target.fingerprint,
    )
    body = record.model_dump_json(indent=2).encode()
    await run.storage.put(
        target.out_bucket, error_key(prefix, target.output_key), body, content_type="application/json"
    )
    if stale_outputs:
        await run.storage.delete(target.out_bucket, manifest_key(prefix, target.output_key))
        await run.storage.delete(target.out_bucket, records_key(prefix, target.output_key))
    log.warning("source_parked", error=exc.code, reason=str(exc))
    return DocumentResult(target.source.bucket, target.source.key, "parked", reason=str(exc))


async def remove_outputs(run: Run, out_bucket: str, output_key: str) -> None:
    storage, prefix = run.storage, run.settings.output_prefix
    await storage.delete(out_bucket, manifest_key(prefix, output_key))
    await storage.delete(out_bucket, records_key(prefix, output_key))
    await storage.delete(out_bucket, error_key(prefix, output_key))
    await Checkpoint(storage, out_bucket, checkpoint_prefix(prefix, output_key), model="").discard()
