"""The pipeline for one document: load → parse → chunk → embed → write; and its removal.

It knows nothing of triggers: handlers turn events into calls of `embed_object`, `embed_inline`,
`embed_or_hand_over` and `remove_object_outputs`; a `Run` carries what one invocation works with.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from embedding_pipeline.checkpoints import Checkpoint, read_known_vectors
from embedding_pipeline.documents import ParsedDocument, chunk_document, parse_document
from embedding_pipeline.documents.model import whole
from embedding_pipeline.errors import (
    ConfigurationError,
    DocumentTooLarge,
    EmptyDocument,
    OutOfTime,
    PermanentError,
    UnsafeKey,
)
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs import (
    Target,
    finish_outputs,
    park,
    remove_outputs,
    save_checkpoint,
    writing_records,
)
from embedding_pipeline.records import (
    INLINE_DIR,
    SourceRef,
    checkpoint_prefix,
    content_hash,
    manifest_key,
    parse_manifest,
    records_key,
    settings_fingerprint,
    validate_source_key,
)
from embedding_pipeline.run import DocumentResult, Run
from embedding_pipeline.vectorize import KnownVector, stream_embedded

log = get_logger()

_MANIFEST_MAX_BYTES = 1024 * 1024
Loader = Callable[[], Awaitable[ParsedDocument | None]]


def fingerprint_for(run: Run, model: str) -> str:
    s = run.settings
    return settings_fingerprint(
        model=model, dimensions=s.embeddings_dimensions, chunking=run.chunking, text_field=s.json_text_field
    )


async def embed_object(run: Run, bucket: str, key: str, *, dry_run: bool = False) -> DocumentResult:
    """Embed `s3://bucket/key` into its records and manifest; park it if it can never succeed.

    Raises TransientError (storage, API, deadline) so the caller's trigger delivers again; the vectors
    embedded before that are checkpointed, so the retry pays only for the rest.
    """
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        try:
            validate_source_key(key)
        except UnsafeKey as exc:
            log.error("source_refused", reason=str(exc))
            return DocumentResult(bucket, key, "refused", reason=str(exc))
        settings, storage = run.settings, run.storage
        info = await storage.head(bucket, key)
        if info is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        model = settings.document_model_uri
        target = Target(
            source=SourceRef(bucket=bucket, key=key, etag=info.etag, size=info.size),
            out_bucket=settings.output_bucket or bucket,
            output_key=key,
            record_id=key,
            model=model,
            fingerprint=fingerprint_for(run, model),
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

        return await _embed_document(run, target, load, still_current=unchanged, dry_run=dry_run)


async def embed_inline(
    run: Run, record_id: str, text: str, *, metadata: dict[str, Any] | None = None, model: str | None = None
) -> DocumentResult:
    """Embed a text that arrived in a message or request, to `{OUTPUT_PREFIX}_inline/{id}.jsonl`."""
    output_key = INLINE_DIR + record_id
    settings = run.settings
    out_bucket = settings.output_bucket or settings.source_bucket
    with structlog.contextvars.bound_contextvars(inline_id=record_id):
        try:
            validate_source_key(output_key)
        except UnsafeKey as exc:
            log.error("inline_refused", reason=str(exc))
            return DocumentResult("", output_key, "refused", reason=str(exc))
        if out_bucket is None:
            raise ConfigurationError("inline records need OUTPUT_BUCKET or SOURCE_BUCKET")
        model_uri = settings.resolve_model(model)
        # The content hash plays the ETag's part: the same text and settings cost nothing the second time.
        target = Target(
            source=SourceRef(bucket=out_bucket, key=output_key, etag=content_hash(text)[:32], size=len(text)),
            out_bucket=out_bucket,
            output_key=output_key,
            record_id=record_id,
            model=model_uri,
            fingerprint=fingerprint_for(run, model_uri),
            metadata=dict(metadata or {}),
        )

        async def load() -> ParsedDocument:
            return whole(text, "text")

        return await _embed_document(run, target, load, still_current=None, dry_run=False)


async def embed_or_hand_over(run: Run, bucket: str, key: str, *, continuation: int = 0) -> DocumentResult:
    """Embed, and if the deadline comes first, send the rest to the queue instead of failing.

    The next invocation resumes from the checkpoint. Without a queue (or past MAX_CONTINUATIONS) the
    OutOfTime error propagates, so the trigger's own retry resumes instead.
    """
    try:
        return await embed_object(run, bucket, key)
    except OutOfTime:
        if run.queue is None or continuation >= run.settings.max_continuations:
            raise
        if bucket not in run.settings.nameable_buckets:
            # The queue adapter would park a message naming this bucket: resume by the trigger's retry.
            log.warning("continuation_not_queued", bucket=bucket, reason="bucket is not SOURCE_BUCKET")
            raise
        body = json.dumps(
            {"key": key, "bucket": bucket, "continuation": continuation + 1}, ensure_ascii=False
        )
        await run.queue.send(body)
        log.info("document_continued", bucket=bucket, key=key, continuation=continuation + 1)
        return DocumentResult(bucket, key, "continued", reason="out of time: continues from its checkpoint")


async def _embed_document(
    run: Run,
    target: Target,
    load: Loader,
    *,
    still_current: Callable[[], Awaitable[bool]] | None,
    dry_run: bool,
) -> DocumentResult:
    settings, storage = run.settings, run.storage
    bucket, key = target.source.bucket, target.source.key
    manifest_at = manifest_key(settings.output_prefix, target.output_key)
    previous = parse_manifest(
        await storage.get(target.out_bucket, manifest_at, max_bytes=_MANIFEST_MAX_BYTES)
    )
    if previous and previous.source.etag == target.source.etag and previous.fingerprint == target.fingerprint:
        log.info("source_unchanged", chunks=previous.chunks)
        return DocumentResult(bucket, key, "unchanged", chunks=previous.chunks, output=manifest_at)

    checkpoint = Checkpoint(
        storage,
        target.out_bucket,
        checkpoint_prefix(settings.output_prefix, target.output_key),
        model=target.model,
    )
    try:
        document = await load()
        if document is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        chunks = chunk_document(document, run.chunking)
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
        records_at = records_key(settings.output_prefix, target.output_key)
        await read_known_vectors(
            storage, bucket=target.out_bucket, key=records_at, model=target.model, wanted=None, known=known
        )
        resumed = await checkpoint.load(known, None)
        log.info(
            "source_parsed", format=document_format, chunks=len(chunks), known=len(known), resumed=resumed
        )
        if dry_run:
            return _estimate(bucket, key, chunks_text=[c.text for c in chunks], known=known, run=run)
        async with writing_records(run, target) as records:
            try:
                await stream_embedded(
                    chunks,  # consumed: each chunk's text is freed once its record is written
                    known=known,
                    embed=lambda text: run.embed_text(text, target.model),
                    concurrency=settings.embeddings_concurrency,
                    deadline=run.deadline,
                    on_embedded=checkpoint.add,
                    emit=records.add,
                )
            except BaseException:
                await save_checkpoint(checkpoint)
                raise
            await _before_records_replace(run, target, still_current, has_manifest=previous is not None)
    except PermanentError as exc:
        await save_checkpoint(checkpoint)
        return await park(run, target, exc, stale_outputs=previous is not None)
    except _Superseded:
        # A newer upload (or a delete) raced this run; its own event writes the outputs. Leaving the
        # block by this exception aborted the records upload: the previous outputs stand.
        await save_checkpoint(checkpoint)
        log.info("source_superseded")
        return DocumentResult(bucket, key, "superseded")
    return await finish_outputs(run, target, records, document_format=document_format, checkpoint=checkpoint)


class _Superseded(Exception):
    """A newer upload (or a delete) raced this run: its records must not be completed."""


async def _before_records_replace(
    run: Run, target: Target, still_current: Callable[[], Awaitable[bool]] | None, *, has_manifest: bool
) -> None:
    if still_current is not None and not await still_current():
        raise _Superseded
    if has_manifest:
        # The manifest vouches for the records: drop it before they change, write it after.
        manifest_at = manifest_key(run.settings.output_prefix, target.output_key)
        await run.storage.delete(target.out_bucket, manifest_at)


def _estimate(
    bucket: str, key: str, *, chunks_text: list[str], known: dict[str, KnownVector], run: Run
) -> DocumentResult:
    """What embedding would cost, from the chunker's own token estimate, without calling the API."""
    new = {content_hash(text): text for text in chunks_text if content_hash(text) not in known}
    tokens = sum(int(len(text) / run.settings.chars_per_token) + 1 for text in new.values())
    return DocumentResult(
        bucket,
        key,
        "would_embed",
        chunks=len(chunks_text),
        embedded=len(new),
        reused=len(chunks_text) - len(new),
        tokens=tokens,
    )


async def remove_object_outputs(run: Run, bucket: str, key: str) -> DocumentResult:
    """The source was deleted: remove its records, manifest, checkpoint and error record."""
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        try:
            validate_source_key(key)
        except UnsafeKey as exc:
            log.error("source_refused", reason=str(exc))
            return DocumentResult(bucket, key, "refused", reason=str(exc))
        if await run.storage.head(bucket, key) is not None:
            # Deleted and uploaded again before this event arrived: the outputs belong to the new object.
            log.info("source_recreated")
            return DocumentResult(bucket, key, "kept")
        await remove_outputs(run, run.settings.output_bucket or bucket, key)
        log.info("source_outputs_removed")
        return DocumentResult(bucket, key, "removed", output=manifest_key(run.settings.output_prefix, key))
