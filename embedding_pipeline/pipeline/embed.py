"""One document through the pipeline: load → parse → chunk (prepare.py) → embed → write.

The outputs are read and written through `outputs.store.DocumentOutputs`; the order they are
written in, and what each promises, is described there and in outputs/layout.py.

Failures are sorted at one boundary (`errors.as_document_failure`): a transient one (network,
timeouts, 429, 5xx, the deadline) or a configuration problem (credentials, roles, the model) is
raised, so the trigger delivers again and nothing is parked or deleted; anything else raised while
the document is loaded, parsed, chunked or embedded parks it with its reason, previous outputs left
in place. A run whose source changed meanwhile, or whose manifest another run replaced, writes no
manifest ("superseded").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass, field
from typing import Any

import structlog

from embedding_pipeline.errors import (
    DocumentTooLarge,
    PermanentError,
    StorageError,
    UnexpectedFailure,
    as_document_failure,
)
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.checkpoints import Checkpoint
from embedding_pipeline.outputs.models import (
    ErrorRecord,
    Manifest,
    SourceRef,
    chunking_summary,
    settings_fingerprint,
    utc_now,
)
from embedding_pipeline.outputs.previous import PreviousVectors
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.pipeline.prepare import Loaded, Loader, parse_chunks, previous_chunks
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.redact import redact
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import (
    Limits,
    parse_document,
)
from embedding_pipeline.stages.vectorize import KnownVector, content_hash, stream_embedded
from embedding_pipeline.text_safety import printable

log = get_logger()


StillCurrent = Callable[[str | None], Awaitable[bool]]  # is the source still at this ETag?


@dataclass(frozen=True, slots=True)
class Target:
    """One document to embed: where its outputs go and what they say about it."""

    outputs: DocumentOutputs
    source: SourceRef  # what the records describe
    record_id: str  # records are "{record_id}#{n}"
    model: str
    fingerprint: str
    metadata: dict[str, Any] = field(default_factory=dict)  # carried into every record and the manifest
    submission: str | None = None  # an inline text's message: kept with its checkpoint if the run stops


async def embed_object(
    invocation: Invocation, bucket: str, key: str, *, dry_run: bool = False
) -> DocumentResult:
    """Embed `s3://bucket/key` into its records and manifest; park it if it can never succeed.

    Raises TransientError (storage, API, deadline) so the caller's trigger delivers again; the vectors
    embedded before that are checkpointed, so the retry pays only for the rest.
    """
    with structlog.contextvars.bound_contextvars(bucket=bucket, key=key):
        if (refused := await refuse_unsafe(invocation, bucket, key, dry_run=dry_run)) is not None:
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

        async def load(limits: Limits) -> Loaded | None:
            if info.size > settings.max_source_bytes:
                raise DocumentTooLarge(
                    f"{info.size} bytes is over MAX_SOURCE_BYTES={settings.max_source_bytes}"
                )
            found = await storage.get_with_info(bucket, key, max_bytes=settings.max_source_bytes)
            if found is None:
                return None
            data, read = found
            document = parse_document(
                data,
                key,
                text_field=settings.json_text_field,
                limits=limits,
                csv_delimiter=settings.csv_delimiter,
            )
            return Loaded(document, SourceRef(bucket=bucket, key=key, etag=read.etag, size=read.size))

        async def still_current(etag: str | None) -> bool:
            current = await storage.head(bucket, key)
            return current is not None and current.etag == etag

        return await embed_document(invocation, target, load, still_current=still_current, dry_run=dry_run)


async def refuse_unsafe(
    invocation: Invocation, bucket: str, key: str, *, dry_run: bool = False
) -> DocumentResult | None:
    """The result for a key that cannot have outputs (None for a good one), its error record written
    under `_errors/_refused/`, where it fits whatever the key."""
    outputs = invocation.outputs(bucket)
    reason = outputs.layout.key_refusal(key)
    if reason is None:
        return None
    log.error("source_refused", reason=reason)
    if not dry_run:
        record = ErrorRecord(
            source=SourceRef(bucket=bucket, key=printable(key)),
            error="unsafe_key",
            reason=reason,
            failed_at=utc_now(),
        )
        await outputs.park_refused(record, key=key)
    return DocumentResult(bucket, key, "refused", reason=reason)


async def embed_document(  # noqa: PLR0911 - one return per outcome reads better than a result variable
    invocation: Invocation,
    target: Target,
    load: Loader,
    *,
    still_current: StillCurrent | None,
    dry_run: bool,
) -> DocumentResult:
    settings, outputs = invocation.settings, target.outputs
    bucket, key = target.source.bucket, target.source.key
    previous, manifest_etag = await outputs.manifest_version()
    if previous is not None and await _up_to_date(previous, target):
        return _unchanged(target, previous)

    checkpoint = outputs.checkpoint(target.model)
    limits = Limits(max_chunks=settings.max_chunks_per_document, deadline=invocation.deadline)
    try:
        kept = await previous_chunks(outputs, previous, target.model)
        same_chunking = previous is not None and previous.chunking == chunking_summary(settings)
        parsed = await parse_chunks(invocation, load, limits, kept if same_chunking else None)
        if parsed is None:
            log.info("source_missing")
            return DocumentResult(bucket, key, "missing")
        target = dataclasses.replace(target, source=parsed.source)
        if previous is not None and await _up_to_date(previous, target):
            return _unchanged(target, previous)  # the bytes read are a version the manifest covers
        document_format, chunks = parsed.format, parsed.chunks
        del parsed
        known: dict[str, KnownVector] = {}
        resumed = await checkpoint.load(known, None)
        held = kept.hashes() if kept is not None else set()  # made now: the text is let go
        log.info(
            "source_parsed",
            format=document_format,
            chunks=len(chunks),
            known=len(held) + len(known),
            resumed=resumed,
        )
        if dry_run:
            return _estimate(
                bucket,
                key,
                chunks_text=[c.text for c in chunks],
                known=held | known.keys(),
                settings=settings,
            )
        later = outputs.previous_vectors(target.model, held) if held else None
        model = target.model
        async with outputs.writing_records(
            record_id=target.record_id, source=target.source, model=model, metadata=target.metadata
        ) as records:
            try:
                await stream_embedded(
                    chunks,  # consumed: each chunk's text is freed once its record is written
                    known=known,
                    embed=lambda text: invocation.embed_once(text, content_hash(text), model),
                    concurrency=settings.embeddings_concurrency,
                    deadline=invocation.deadline,
                    on_embedded=checkpoint.add,
                    emit=records.add,
                    later=later,
                )
            except BaseException as exc:
                await _let_go(later)
                # An inline text is kept for reconcile only if a retry may succeed.
                retry = not isinstance(exc, Exception) or as_document_failure(exc) is None
                await _stop_early(target, checkpoint, keep_submission=retry)
                raise
            await _let_go(later)
            await _before_replacing(outputs, still_current, target.source.etag, manifest_etag)
    except _Superseded:
        # A newer upload (or a delete, or another run) raced this one; leaving the block by this
        # exception aborted the records upload: the outputs in place stand.
        await _save_checkpoint(checkpoint)
        log.info("source_superseded")
        return DocumentResult(bucket, key, "superseded")
    except Exception as exc:
        failure = as_document_failure(exc)
        if failure is None:
            raise
        if isinstance(failure, UnexpectedFailure):
            log.error("source_failed_unexpectedly", error=failure.code, exc_info=exc)
        if dry_run:
            return DocumentResult(bucket, key, "would_park", reason=redact(str(failure)))
        await _save_checkpoint(checkpoint)
        return await _park(target, failure)
    return await _complete(
        invocation,
        target,
        records,
        document_format=document_format,
        checkpoint=checkpoint,
        replacing=manifest_etag,
    )


async def _let_go(later: PreviousVectors | None) -> None:
    if later is not None:
        await later.aclose()


async def _up_to_date(manifest: Manifest, target: Target) -> bool:
    """Whether the manifest vouches for this version of the source, these settings, and the records
    object as it stands (a lost race can overwrite it)."""
    if manifest.source.etag != target.source.etag or manifest.fingerprint != target.fingerprint:
        return False  # no need to look at the records
    records_etag = await target.outputs.records_etag()
    return manifest.vouches_for(
        source_etag=target.source.etag, fingerprint=target.fingerprint, records_etag=records_etag
    )


def _unchanged(target: Target, manifest: Manifest) -> DocumentResult:
    chunks = manifest.chunks
    log.info("source_unchanged", chunks=chunks)
    return DocumentResult(
        target.source.bucket,
        target.source.key,
        "unchanged",
        chunks=chunks,
        output=target.outputs.keys.manifest,
    )


class _Superseded(Exception):
    """A newer upload (or a delete) raced this run: its records must not be completed."""


async def _before_replacing(
    outputs: DocumentOutputs,
    still_current: StillCurrent | None,
    source_etag: str | None,
    manifest_etag: str | None,
) -> None:
    """The last look before the records object is replaced: the source must still be the version
    read, and the manifest the one this run started from (else another run finished meanwhile)."""
    if still_current is not None and not await still_current(source_etag):
        raise _Superseded
    if await outputs.manifest_etag() != manifest_etag:
        raise _Superseded


async def _stop_early(target: Target, checkpoint: Checkpoint, *, keep_submission: bool) -> None:
    """Keep what was paid for, and an inline text with it, so that a retry or reconcile resumes."""
    await _save_checkpoint(checkpoint)
    if target.submission is not None and keep_submission:
        try:
            await target.outputs.save_submission(target.submission)
        except StorageError as exc:
            log.warning("submission_not_saved", error=exc)


async def _complete(
    invocation: Invocation,
    target: Target,
    records: RecordsSink,
    *,
    document_format: str,
    checkpoint: Checkpoint,
    replacing: str | None,
) -> DocumentResult:
    usage = records.usage
    manifest = records.manifest(invocation.settings, document_format=document_format)
    if not await target.outputs.complete(manifest, checkpoint, replacing=replacing):
        log.warning("manifest_replaced_meanwhile", records_etag=manifest.records.etag)
        return DocumentResult(target.source.bucket, target.source.key, "superseded")
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
        index=await _follow(invocation, target.outputs, manifest),
    )


async def _follow(invocation: Invocation, outputs: DocumentOutputs, manifest: Manifest) -> str | None:
    """The new records into the vector index, if there is one: only now that the manifest stands."""
    if invocation.vector_index is None:
        return None
    from embedding_pipeline.vector_index.follow import follow_manifest  # noqa: PLC0415

    return await follow_manifest(
        invocation.vector_index, invocation.storage, outputs, manifest, deadline=invocation.deadline
    )


async def _park(target: Target, exc: PermanentError) -> DocumentResult:
    reason = redact(str(exc))
    record = ErrorRecord(
        source=target.source,
        error=exc.code,
        reason=reason,
        failed_at=utc_now(),
        fingerprint=target.fingerprint,
    )
    await target.outputs.park(record)
    log.warning("source_parked", error=exc.code, reason=reason)
    return DocumentResult(target.source.bucket, target.source.key, "parked", reason=reason)


async def _save_checkpoint(checkpoint: Checkpoint) -> None:
    """Keep what was paid for; a failure here must not hide the error that stopped the run."""
    try:
        await checkpoint.flush()
    except StorageError as exc:
        log.warning("checkpoint_not_saved", error=exc)
    else:
        log.info("checkpoint_saved", vectors=checkpoint.saved)


def _estimate(
    bucket: str, key: str, *, chunks_text: list[str], known: Container[str], settings: Settings
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
        text_chars=sum(len(text) for text in new.values()),
    )
