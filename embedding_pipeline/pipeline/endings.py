"""How one document's run ends (embed.py): complete (the manifest, then the index), unchanged,
parked with its reason, stopped early with what it paid for kept, estimated (a dry run), or refused
for a key that cannot have outputs.
"""

from __future__ import annotations

from collections.abc import Container

from embedding_pipeline.errors import PermanentError, StorageError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.ocr.reader import NO_OCR, OcrTally
from embedding_pipeline.outputs.checkpoints import Checkpoint
from embedding_pipeline.outputs.models import ErrorRecord, Manifest, Recipe, SourceRef, utc_now
from embedding_pipeline.outputs.previous import PreviousVectors
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.outputs.store import BucketOutputs, DocumentOutputs
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.redact import redact
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.vectorize import content_hash
from embedding_pipeline.text_safety import printable

log = get_logger()


async def complete(
    invocation: Invocation,
    outputs: DocumentOutputs,
    records: RecordsSink,
    *,
    document_format: str,
    checkpoint: Checkpoint,
    replacing: str | None,
    sidecar_etag: str | None = None,
    ocr: OcrTally = NO_OCR,
) -> DocumentResult:
    """The records are written: the manifest that vouches for them, then the vector index. `ocr`:
    the pages and requests Vision OCR was paid for this version (the manifest's usage)."""
    usage, source = records.usage, records.source
    manifest = records.manifest(
        document_format=document_format,
        deployment=invocation.deployment,
        sidecar_etag=sidecar_etag,
        ocr_pages=ocr.pages,
        ocr_requests=ocr.requests,
    )
    if not await outputs.complete(manifest, checkpoint, replacing=replacing):
        log.warning("manifest_replaced_meanwhile", records_etag=manifest.records.etag)
        return DocumentResult(source.bucket, source.key, "superseded")
    chunks, reused = records.chunks, records.reused
    log.info("source_embedded", chunks=chunks, reused=reused, billed_tokens=usage.billed_tokens)
    totals = invocation.totals
    totals.documents += 1
    totals.chunks += chunks
    totals.reused += reused
    invocation.metrics.add("documents_embedded", source.bucket)
    index = await _follow(invocation, outputs, manifest)
    if index == "pending":  # the index write failed: the document is marked for reconcile
        invocation.metrics.add("index_failures", source.bucket)
    return DocumentResult(
        source.bucket,
        source.key,
        "embedded",
        chunks=chunks,
        embedded=usage.api_requests,
        reused=reused,
        tokens=usage.billed_tokens,
        output=outputs.keys.manifest,
        index=index,
    )


async def _follow(invocation: Invocation, outputs: DocumentOutputs, manifest: Manifest) -> str | None:
    """The new records into the vector index, if there is one: only now that the manifest stands."""
    if invocation.vector_index is None:
        return None
    from embedding_pipeline.vector_index.follow import follow_manifest  # noqa: PLC0415

    return await follow_manifest(
        invocation.vector_index, invocation.storage, outputs, manifest, deadline=invocation.deadline
    )


async def unchanged(
    invocation: Invocation,
    outputs: DocumentOutputs,
    source: SourceRef,
    manifest: Manifest,
    *,
    dry_run: bool,
) -> DocumentResult:
    """The manifest vouches for this version: nothing to pay. An error record left beside it (an
    unexpected failure of another run, a race) is obsolete, and would have every sweep retry it."""
    if not dry_run:
        await outputs.clear_error()
    chunks = manifest.chunks
    log.info("source_unchanged", chunks=chunks)
    if not dry_run:  # a dry run only looks: it is no work to count
        invocation.metrics.add("documents_unchanged", source.bucket)
    return DocumentResult(source.bucket, source.key, "unchanged", chunks=chunks, output=outputs.keys.manifest)


async def park(
    invocation: Invocation,
    outputs: DocumentOutputs,
    source: SourceRef,
    recipe: Recipe,
    exc: PermanentError,
    *,
    sidecar_etag: str | None = None,
) -> DocumentResult:
    """The error record, naming the version parked: its source and metadata sidecar ETags (either
    changed, reconcile tries it again)."""
    reason = redact(str(exc))
    record = ErrorRecord(
        source=source,
        error=exc.code,
        reason=reason,
        failed_at=utc_now(),
        fingerprint=recipe.fingerprint,
        sidecar_etag=sidecar_etag,
    )
    await outputs.park(record)
    log.warning("source_parked", error=exc.code, reason=reason)
    invocation.metrics.add("documents_parked", source.bucket)
    return DocumentResult(source.bucket, source.key, "parked", reason=reason)


async def refuse_key(
    outputs: BucketOutputs, bucket: str, key: str, *, dry_run: bool = False
) -> DocumentResult | None:
    """The result for a key that cannot have outputs (None for a good one), its error record written
    under `_errors/_refused/`, where it fits whatever the key."""
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


async def stop_early(
    outputs: DocumentOutputs, submission: str | None, checkpoint: Checkpoint, *, keep_submission: bool
) -> None:
    """Keep what was paid for, and an inline text with it, so that a retry or reconcile resumes."""
    await save_checkpoint(checkpoint)
    if submission is not None and keep_submission:
        try:
            await outputs.save_submission(submission)
        except StorageError as exc:
            log.warning("submission_not_saved", error=exc)


async def save_checkpoint(checkpoint: Checkpoint) -> None:
    """Keep what was paid for; a failure here must not hide the error that stopped the run."""
    try:
        await checkpoint.flush()
    except StorageError as exc:
        log.warning("checkpoint_not_saved", error=exc)
    else:
        log.info("checkpoint_saved", vectors=checkpoint.saved)


async def let_go(later: PreviousVectors | None) -> None:
    if later is not None:
        await later.aclose()


def estimate(
    source: SourceRef,
    chunks_text: list[str],
    known: Container[str],
    settings: Settings,
    *,
    ocr_pages: int = 0,
) -> DocumentResult:
    """What embedding would cost, from the chunker's own token estimate, without calling the API;
    `ocr_pages`: pages Vision OCR would read first (the chunks of their text are not counted)."""
    new = {content_hash(text): text for text in chunks_text if content_hash(text) not in known}
    tokens = sum(int(len(text) / settings.chars_per_token) + 1 for text in new.values())
    return DocumentResult(
        source.bucket,
        source.key,
        "would_embed",
        chunks=len(chunks_text),
        embedded=len(new),
        reused=len(chunks_text) - len(new),
        tokens=tokens,
        text_chars=sum(len(text) for text in new.values()),
        ocr_pages=ocr_pages or None,
    )
