"""The pipeline for one source object: load → parse → chunk → embed → write; and its removal.

It knows nothing of triggers: handlers turn events into calls of `embed_object` and
`remove_object_outputs`, and a `Run` carries what one invocation works with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import structlog

from embedding_pipeline.checkpoints import Checkpoint, read_known_vectors
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.documents import ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.embeddings import Embedding, EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, PermanentError, StorageError, UnsafeKey
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
    parse_manifest,
    record_line,
    records_key,
    settings_fingerprint,
    utc_now,
    validate_source_key,
)
from embedding_pipeline.settings import Settings
from embedding_pipeline.storage import ObjectStorage
from embedding_pipeline.vectorize import EmbeddedChunk, KnownVector, embed_chunks

log = get_logger()

Outcome = Literal["embedded", "unchanged", "parked", "missing", "superseded", "refused", "removed", "kept"]
_MANIFEST_MAX_BYTES = 1024 * 1024


@dataclass(slots=True)
class RunTotals:
    """Documents and chunks one invocation wrote, for its summary line."""

    documents: int = 0
    chunks: int = 0
    reused: int = 0


@dataclass(frozen=True, slots=True)
class Run:
    """What one invocation works with: settings, clients bound to its credentials, its deadline."""

    settings: Settings
    storage: ObjectStorage
    embeddings: EmbeddingsClient
    authorization: str = field(repr=False)
    deadline: Deadline
    usage: EmbeddingsUsage = field(default_factory=EmbeddingsUsage)
    totals: RunTotals = field(default_factory=RunTotals)

    @property
    def chunking(self) -> ChunkingSettings:
        s = self.settings
        return ChunkingSettings(
            max_tokens=s.chunk_max_tokens,
            overlap_tokens=s.chunk_overlap_tokens,
            chars_per_token=s.chars_per_token,
        )

    async def embed_text(self, text: str, model: str) -> Embedding:
        return await self.embeddings.embed(
            text, model=model, authorization=self.authorization, usage=self.usage, deadline=self.deadline
        )


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


async def embed_object(run: Run, bucket: str, key: str) -> DocumentResult:
    """Embed `s3://bucket/key` into its records and manifest; park it if it can never succeed.

    Raises TransientError (storage, API, deadline) so the caller's trigger delivers again; the vectors
    embedded before that are checkpointed, so the retry pays only for the rest.
    """
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        try:
            validate_source_key(key)
        except UnsafeKey as exc:
            log.exception("source_refused", reason=str(exc))
            return DocumentResult(bucket, key, "refused", reason=str(exc))
        return await _embed_object(run, bucket, key)


async def _embed_object(run: Run, bucket: str, key: str) -> DocumentResult:
    settings, storage = run.settings, run.storage
    out_bucket = settings.output_bucket or bucket
    model = settings.document_model_uri
    fingerprint = settings_fingerprint(
        model=model,
        dimensions=settings.embeddings_dimensions,
        chunking=run.chunking,
        text_field=settings.json_text_field,
    )
    info = await storage.head(bucket, key)
    if info is None:
        log.info("source_missing")
        return DocumentResult(bucket, key, "missing")
    source = SourceRef(bucket=bucket, key=key, etag=info.etag, size=info.size)
    manifest_at = manifest_key(settings.output_prefix, key)
    previous = parse_manifest(await storage.get(out_bucket, manifest_at, max_bytes=_MANIFEST_MAX_BYTES))
    if previous is not None and previous.source.etag == info.etag and previous.fingerprint == fingerprint:
        log.info("source_unchanged", chunks=previous.chunks)
        return DocumentResult(bucket, key, "unchanged", chunks=previous.chunks, output=manifest_at)

    checkpoint = Checkpoint(storage, out_bucket, checkpoint_prefix(settings.output_prefix, key), model=model)
    try:
        if info.size > settings.max_source_bytes:
            raise DocumentTooLarge(f"{info.size} bytes is over MAX_SOURCE_BYTES={settings.max_source_bytes}")
        data = await storage.get(bucket, key, max_bytes=settings.max_source_bytes)
        if data is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        document = parse_document(data, key, text_field=settings.json_text_field)
        del data  # the raw bytes are not needed once decoded; large documents need the memory
        chunks = chunk_document(document, run.chunking)
        if not chunks:
            raise EmptyDocument("the document has no text to embed")
        if len(chunks) > settings.max_chunks_per_document:
            raise DocumentTooLarge(
                f"{len(chunks)} chunks is over MAX_CHUNKS_PER_DOCUMENT={settings.max_chunks_per_document}"
            )
        known: dict[str, KnownVector] = {}
        records_at = records_key(settings.output_prefix, key)
        await read_known_vectors(
            storage, bucket=out_bucket, key=records_at, model=model, wanted=None, known=known
        )
        resumed = await checkpoint.load(known, None)
        log.info(
            "source_parsed", format=document.format, chunks=len(chunks), known=len(known), resumed=resumed
        )
        try:
            embedded = await embed_chunks(
                chunks,
                known=known,
                embed=lambda text: run.embed_text(text, model),
                concurrency=settings.embeddings_concurrency,
                deadline=run.deadline,
                on_embedded=checkpoint.add,
            )
        except BaseException:
            await _save_checkpoint(checkpoint)
            raise
    except PermanentError as exc:
        await _save_checkpoint(checkpoint)
        await _park(run, source, out_bucket, exc, fingerprint, stale_manifest=previous is not None)
        return DocumentResult(bucket, key, "parked", reason=str(exc))

    current = await storage.head(bucket, key)
    if current is None or current.etag != info.etag:
        # A newer upload (or a delete) raced this run; its own event writes the outputs.
        await _save_checkpoint(checkpoint)
        log.info("source_superseded")
        return DocumentResult(bucket, key, "superseded")
    return await _write_outputs(
        run,
        source=source,
        out_bucket=out_bucket,
        embedded=embedded,
        document_format=document.format,
        fingerprint=fingerprint,
        checkpoint=checkpoint,
        previous=previous,
    )


async def _save_checkpoint(checkpoint: Checkpoint) -> None:
    """Keep what was paid for; a failure here must not hide the error that stopped the run."""
    try:
        await checkpoint.flush()
    except StorageError as exc:
        log.warning("checkpoint_not_saved", error=exc)
    else:
        log.info("checkpoint_saved", vectors=checkpoint.saved)


async def _write_outputs(
    run: Run,
    *,
    source: SourceRef,
    out_bucket: str,
    embedded: list[EmbeddedChunk],
    document_format: str,
    fingerprint: str,
    checkpoint: Checkpoint,
    previous: Manifest | None,
) -> DocumentResult:
    settings, storage = run.settings, run.storage
    model = settings.document_model_uri
    records_at = records_key(settings.output_prefix, source.key)
    manifest_at = manifest_key(settings.output_prefix, source.key)
    if previous is not None:
        # The manifest vouches for the records: drop it before they change, write it after.
        await storage.delete(out_bucket, manifest_at)
    async with storage.open_writer(out_bucket, records_at, content_type="application/x-ndjson") as writer:
        for number, item in enumerate(embedded):
            await writer.write(
                record_line(
                    key=source.key,
                    number=number,
                    chunk=item.chunk,
                    text_hash=item.text_hash,
                    vector=item.vector,
                    tokens=item.tokens,
                    model=model,
                    source=source,
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
        source=source,
        records=SourceRef(bucket=out_bucket, key=records_at, etag=writer.etag),
        model=model,
        dimensions=settings.embeddings_dimensions,
        chunks=len(embedded),
        format=document_format,
        usage=usage,
        chunking=chunking_summary(run.chunking),
        fingerprint=fingerprint,
        created_at=utc_now(),
    )
    await storage.put(
        out_bucket, manifest_at, manifest.model_dump_json(indent=2).encode(), content_type="application/json"
    )
    await checkpoint.discard()
    await storage.delete(out_bucket, error_key(settings.output_prefix, source.key))
    log.info("source_embedded", chunks=len(embedded), reused=reused, tokens=usage.billed_tokens)
    run.totals.documents += 1
    run.totals.chunks += len(embedded)
    run.totals.reused += reused
    return DocumentResult(
        source.bucket,
        source.key,
        "embedded",
        chunks=len(embedded),
        embedded=len(embedded) - reused,
        reused=reused,
        tokens=usage.billed_tokens,
        output=manifest_at,
    )


async def _park(
    run: Run,
    source: SourceRef,
    out_bucket: str,
    exc: PermanentError,
    fingerprint: str,
    *,
    stale_manifest: bool,
) -> None:
    prefix = run.settings.output_prefix
    record = ErrorRecord(
        source=source, error=exc.code, reason=str(exc), failed_at=utc_now(), fingerprint=fingerprint
    )
    await run.storage.put(
        out_bucket,
        error_key(prefix, source.key),
        record.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
    if stale_manifest:
        # The outputs describe content that is gone; a reader must not mistake them for the new version.
        await run.storage.delete(out_bucket, manifest_key(prefix, source.key))
        await run.storage.delete(out_bucket, records_key(prefix, source.key))
    log.warning("source_parked", error=exc.code, reason=str(exc))


async def remove_object_outputs(run: Run, bucket: str, key: str) -> DocumentResult:
    """The source was deleted: remove its records, manifest, checkpoint and error record."""
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        try:
            validate_source_key(key)
        except UnsafeKey as exc:
            log.exception("source_refused", reason=str(exc))
            return DocumentResult(bucket, key, "refused", reason=str(exc))
        storage, prefix = run.storage, run.settings.output_prefix
        if await storage.head(bucket, key) is not None:
            # Deleted and uploaded again before this event arrived: the outputs belong to the new object.
            log.info("source_recreated")
            return DocumentResult(bucket, key, "kept")
        out_bucket = run.settings.output_bucket or bucket
        await storage.delete(out_bucket, manifest_key(prefix, key))
        await storage.delete(out_bucket, records_key(prefix, key))
        await storage.delete(out_bucket, error_key(prefix, key))
        await Checkpoint(storage, out_bucket, checkpoint_prefix(prefix, key), model="").discard()
        log.info("source_outputs_removed")
        return DocumentResult(bucket, key, "removed", output=manifest_key(prefix, key))
