"""Writing a document's outputs: records first, manifest last; error records; removal."""

from __future__ import annotations

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


async def write_outputs(
    run: Run,
    target: Target,
    embedded: list[EmbeddedChunk],
    *,
    document_format: str,
    checkpoint: Checkpoint,
    replaces_manifest: bool,
) -> DocumentResult:
    storage, prefix = run.storage, run.settings.output_prefix
    records_at = records_key(prefix, target.output_key)
    manifest_at = manifest_key(prefix, target.output_key)
    if replaces_manifest:
        # The manifest vouches for the records: drop it before they change, write it after.
        await storage.delete(target.out_bucket, manifest_at)
    async with storage.open_writer(
        target.out_bucket, records_at, content_type="application/x-ndjson"
    ) as writer:
        for number, item in enumerate(embedded):
            chunk = item.chunk
            if target.metadata:
                chunk = type(chunk)(chunk.text, chunk.start, chunk.end, {**target.metadata, **chunk.metadata})
            await writer.write(
                record_line(
                    key=target.record_id,
                    number=number,
                    chunk=chunk,
                    text_hash=item.text_hash,
                    vector=item.vector,
                    tokens=item.tokens,
                    model=target.model,
                    source=target.source,
                )
            )
    reused = sum(1 for item in embedded if item.reused)
    usage = ManifestUsage(
        tokens=sum(item.tokens for item in embedded),
        billed_tokens=sum(item.tokens for item in embedded if not item.reused),
        api_requests=len(embedded) - reused,
        reused_chunks=reused,
    )
    manifest = Manifest(
        source=target.source,
        records=SourceRef(bucket=target.out_bucket, key=records_at, etag=writer.etag),
        model=target.model,
        dimensions=run.settings.embeddings_dimensions,
        chunks=len(embedded),
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
    log.info("source_embedded", chunks=len(embedded), reused=reused, billed_tokens=usage.billed_tokens)
    run.totals.documents += 1
    run.totals.chunks += len(embedded)
    run.totals.reused += reused
    return DocumentResult(
        target.source.bucket,
        target.source.key,
        "embedded",
        chunks=len(embedded),
        embedded=len(embedded) - reused,
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
