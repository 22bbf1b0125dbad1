"""One document through the pipeline: load → parse → chunk → embed → write.

The outputs are read and written through `outputs.store.DocumentOutputs`; the order they are
written in, and what each promises, is described there and in outputs/layout.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from embedding_pipeline.errors import (
    DocumentTooLarge,
    EmptyDocument,
    PermanentError,
    StorageError,
    UnsafeKey,
)
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.checkpoints import Checkpoint
from embedding_pipeline.outputs.layout import validate_source_key
from embedding_pipeline.outputs.models import (
    ErrorRecord,
    SourceRef,
    settings_fingerprint,
    utc_now,
)
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import (
    ChunkingSettings,
    ParsedDocument,
    chunk_document,
    parse_document,
)
from embedding_pipeline.stages.vectorize import KnownVector, content_hash, stream_embedded

log = get_logger()

Loader = Callable[[], Awaitable[ParsedDocument | None]]
StillCurrent = Callable[[], Awaitable[bool]]


def chunking_of(settings: Settings) -> ChunkingSettings:
    return ChunkingSettings(
        max_tokens=settings.chunk_max_tokens,
        overlap_tokens=settings.chunk_overlap_tokens,
        chars_per_token=settings.chars_per_token,
    )


@dataclass(frozen=True, slots=True)
class Target:
    """One document to embed: where its outputs go and what they say about it."""

    outputs: DocumentOutputs
    source: SourceRef  # what the records describe
    record_id: str  # records are "{record_id}#{n}"
    model: str
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)  # carried into every record and the manifest


async def embed_object(
    invocation: Invocation, bucket: str, key: str, *, dry_run: bool = False
) -> DocumentResult:
    """Embed `s3://bucket/key` into its records and manifest; park it if it can never succeed.

    Raises TransientError (storage, API, deadline) so the caller's trigger delivers again; the vectors
    embedded before that are checkpointed, so the retry pays only for the rest.
    """
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        if (refused := refuse_unsafe(bucket, key)) is not None:
            return refused
        settings, storage = invocation.settings, invocation.storage
        info = await storage.head(bucket, key)
        if info is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        model = settings.document_model_uri
        target = Target(
            outputs=invocation.outputs(bucket).document(key),
            source=SourceRef(bucket=bucket, key=key, etag=info.etag, size=info.size),
            record_id=key,
            model=model,
            fingerprint=settings_fingerprint(settings, model),
        )

        async def load() -> ParsedDocument | None:
            if info.size > settings.max_source_bytes:
                raise DocumentTooLarge(
                    f"{info.size} bytes is over MAX_SOURCE_BYTES={settings.max_source_bytes}"
                )
            data = await storage.get(bucket, key, max_bytes=settings.max_source_bytes)
            return None if data is None else parse_document(data, key, text_field=settings.json_text_field)

        async def unchanged() -> bool:
            current = await storage.head(bucket, key)
            return current is not None and current.etag == info.etag

        return await embed_document(invocation, target, load, still_current=unchanged, dry_run=dry_run)


def refuse_unsafe(bucket: str, key: str) -> DocumentResult | None:
    """The result for a key the pipeline will not derive output keys from; None for a safe one."""
    try:
        validate_source_key(key)
    except UnsafeKey as exc:
        log.error("source_refused", reason=str(exc))
        return DocumentResult(bucket, key, "refused", reason=str(exc))
    return None


async def embed_document(
    invocation: Invocation,
    target: Target,
    load: Loader,
    *,
    still_current: StillCurrent | None,
    dry_run: bool,
) -> DocumentResult:
    settings, outputs = invocation.settings, target.outputs
    bucket, key = target.source.bucket, target.source.key
    previous = await outputs.manifest()
    if previous and previous.source.etag == target.source.etag and previous.fingerprint == target.fingerprint:
        log.info("source_unchanged", chunks=previous.chunks)
        return DocumentResult(bucket, key, "unchanged", chunks=previous.chunks, output=outputs.keys.manifest)

    checkpoint = outputs.checkpoint(target.model)
    try:
        document = await load()
        if document is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        chunks = chunk_document(document, chunking_of(settings))
        # The chunks hold copies of the text: let the whole document go (20 MB of text is ~40 MB).
        document_format = document.format
        del document
        if not chunks:
            raise EmptyDocument("the document has no text to embed")
        if len(chunks) > settings.max_chunks_per_document:
            raise DocumentTooLarge(
                f"{len(chunks)} chunks is over MAX_CHUNKS_PER_DOCUMENT={settings.max_chunks_per_document}"
            )
        known: dict[str, KnownVector] = {}
        await outputs.known_vectors(target.model, known)
        resumed = await checkpoint.load(known, None)
        log.info(
            "source_parsed", format=document_format, chunks=len(chunks), known=len(known), resumed=resumed
        )
        if dry_run:
            return _estimate(
                bucket, key, chunks_text=[c.text for c in chunks], known=known, settings=settings
            )
        async with outputs.writing_records(
            record_id=target.record_id, source=target.source, model=target.model, metadata=target.metadata
        ) as records:
            try:
                await stream_embedded(
                    chunks,  # consumed: each chunk's text is freed once its record is written
                    known=known,
                    embed=lambda text: invocation.embed_text(text, target.model),
                    concurrency=settings.embeddings_concurrency,
                    deadline=invocation.deadline,
                    on_embedded=checkpoint.add,
                    emit=records.add,
                )
            except BaseException:
                await _save_checkpoint(checkpoint)
                raise
            await _before_replacing(outputs, still_current, has_manifest=previous is not None)
    except PermanentError as exc:
        await _save_checkpoint(checkpoint)
        return await _park(target, exc, drop_previous=previous is not None)
    except _Superseded:
        # A newer upload (or a delete) raced this run; its own event writes the outputs. Leaving the
        # block by this exception aborted the records upload: the previous outputs stand.
        await _save_checkpoint(checkpoint)
        log.info("source_superseded")
        return DocumentResult(bucket, key, "superseded")
    return await _complete(
        invocation, target, records, document_format=document_format, checkpoint=checkpoint
    )


class _Superseded(Exception):
    """A newer upload (or a delete) raced this run: its records must not be completed."""


async def _before_replacing(
    outputs: DocumentOutputs, still_current: StillCurrent | None, *, has_manifest: bool
) -> None:
    if still_current is not None and not await still_current():
        raise _Superseded
    if has_manifest:
        await outputs.drop_manifest()


async def _complete(
    invocation: Invocation,
    target: Target,
    records: RecordsSink,
    *,
    document_format: str,
    checkpoint: Checkpoint,
) -> DocumentResult:
    usage = records.usage
    manifest = records.manifest(invocation.settings, document_format=document_format)
    await target.outputs.complete(manifest, checkpoint)
    chunks, reused = records.chunks, records.reused
    log.info("source_embedded", chunks=chunks, reused=reused, billed_tokens=usage.billed_tokens)
    totals = invocation.totals
    totals.documents += 1
    totals.chunks += chunks
    totals.reused += reused
    return DocumentResult(
        target.source.bucket,
        target.source.key,
        "embedded",
        chunks=chunks,
        embedded=usage.api_requests,
        reused=reused,
        tokens=usage.billed_tokens,
        output=target.outputs.keys.manifest,
    )


async def _park(target: Target, exc: PermanentError, *, drop_previous: bool) -> DocumentResult:
    record = ErrorRecord(
        source=target.source,
        error=exc.code,
        reason=str(exc),
        failed_at=utc_now(),
        fingerprint=target.fingerprint,
    )
    await target.outputs.park(record, drop_previous=drop_previous)
    log.warning("source_parked", error=exc.code, reason=str(exc))
    return DocumentResult(target.source.bucket, target.source.key, "parked", reason=str(exc))


async def _save_checkpoint(checkpoint: Checkpoint) -> None:
    """Keep what was paid for; a failure here must not hide the error that stopped the run."""
    try:
        await checkpoint.flush()
    except StorageError as exc:
        log.warning("checkpoint_not_saved", error=exc)
    else:
        log.info("checkpoint_saved", vectors=checkpoint.saved)


def _estimate(
    bucket: str, key: str, *, chunks_text: list[str], known: dict[str, KnownVector], settings: Settings
) -> DocumentResult:
    """What embedding would cost, from the chunker's own token estimate, without calling the API."""
    new = {content_hash(text): text for text in chunks_text if content_hash(text) not in known}
    tokens = sum(int(len(text) / settings.chars_per_token) + 1 for text in new.values())
    return DocumentResult(
        bucket,
        key,
        "would_embed",
        chunks=len(chunks_text),
        embedded=len(new),
        reused=len(chunks_text) - len(new),
        tokens=tokens,
    )
