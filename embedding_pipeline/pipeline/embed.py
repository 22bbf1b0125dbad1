"""One document through the pipeline: its source loaded, parsed and chunked (prepare.py), the new
chunks embedded, the records and the manifest written (endings.py says how a run ends).

The caller chooses the source (sources.py: an object, an inline text) and says where the outputs go
and what they say (`EmbeddingJob`). The outputs are read and written through
`outputs.store.DocumentOutputs`; the order they are written in, and what each promises, is
described there and in outputs/layout.py.

Failures are sorted at one boundary (`errors.as_document_failure`): a transient one (network,
timeouts, 429, 5xx, the deadline) or a configuration problem (credentials, roles, the model) is
raised, so the trigger delivers again and nothing is parked or deleted; anything else raised while
the document is loaded, parsed, chunked or embedded parks it with its reason, previous outputs left
in place. A run whose source changed meanwhile, or whose manifest another run replaced, writes no
manifest ("superseded").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from embedding_pipeline.errors import (
    BadMetadata,
    ConfigurationError,
    UnexpectedFailure,
    as_document_failure,
)
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.claims import DocumentClaim
from embedding_pipeline.outputs.models import Manifest, Recipe, SourceRef
from embedding_pipeline.outputs.store import DocumentOutputs
from embedding_pipeline.pipeline import endings
from embedding_pipeline.pipeline.prepare import prepare_chunks, previous_chunks
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.pipeline.sources import DocumentSource
from embedding_pipeline.redact import redact
from embedding_pipeline.stages.documents import Limits
from embedding_pipeline.stages.vectorize import KnownVector, content_hash, stream_embedded

log = get_logger()


@dataclass(frozen=True, slots=True)
class EmbeddingJob:
    """Where one document's outputs go and what they say about it (the source says what it is)."""

    outputs: DocumentOutputs
    record_id: str  # records are "{record_id}#{n}"
    recipe: Recipe
    metadata: dict[str, Any] = field(default_factory=dict)  # carried into every record and the manifest
    sidecar_etag: str | None = None  # the metadata sidecar `metadata` holds (an object's; None: none)
    submission: str | None = None  # an inline text's message: kept with its checkpoint if the run stops


class _Superseded(Exception):
    """A newer upload (or a delete) raced this run: its records must not be completed."""


async def embed_document(
    invocation: Invocation, job: EmbeddingJob, source: DocumentSource, *, dry_run: bool = False
) -> DocumentResult:
    """Embed the document `source` reads into `job`'s outputs; park it if it can never succeed.

    Raises TransientError (storage, API, deadline) so the caller's trigger delivers again; the vectors
    embedded before that are checkpointed, so the retry pays only for the rest.
    """
    if dry_run:
        return await _checked_run(invocation, job, source, dry_run=True)
    # Claimed before the manifest is read: a run that held the claim has finished by then, and its
    # manifest is what this one judges (a claim taken after the read would judge an old one).
    async with invocation.turn_of(job.outputs.keys.manifest):
        return await _claimed_run(invocation, job, source)


async def _claimed_run(invocation: Invocation, job: EmbeddingJob, source: DocumentSource) -> DocumentResult:
    """The run, once this run holds the document's claim; "claimed" if another run holds it."""
    outputs, ref = job.outputs, source.ref
    claim = outputs.claim(by=invocation.request_id, version=ref.etag)
    if (other := await claim.take()) is not None:
        log.info("source_claimed", by=other.by, until=other.until)
        lapses_in = max(0.0, other.until - invocation.storage.server_clock.now())
        reason = f"another run embeds it now ({other.by})"
        return DocumentResult(
            ref.bucket, ref.key, "claimed", reason=reason, retry_after_s=round(lapses_in) + 1
        )
    async with claim.holding():
        return await _checked_run(invocation, job, source, dry_run=False, claim=claim)


async def _checked_run(
    invocation: Invocation,
    job: EmbeddingJob,
    source: DocumentSource,
    *,
    dry_run: bool,
    claim: DocumentClaim | None = None,
) -> DocumentResult:
    """Unchanged if the manifest already vouches for this version and its metadata, else the run."""
    outputs, ref = job.outputs, source.ref
    previous, manifest_etag = await outputs.manifest_version()
    _refuse_foreign(previous, invocation.deployment, job)
    try:
        found = await source.document_metadata()
    except BadMetadata as bad:  # the sidecar is part of the document: parked for it
        if dry_run:
            return DocumentResult(ref.bucket, ref.key, "would_park", reason=redact(str(bad)))
        return await endings.park(invocation, outputs, ref, job.recipe, bad, sidecar_etag=bad.sidecar_etag)
    if found is not None:
        job = replace(job, metadata=found.values, sidecar_etag=found.sidecar_etag)
    if previous is not None and await _up_to_date(previous, job, ref):
        return await endings.unchanged(invocation, job.outputs, ref, previous, dry_run=dry_run)
    return await _run(invocation, job, source, previous, manifest_etag, dry_run=dry_run, claim=claim)


async def _run(  # noqa: PLR0911 - one return per outcome reads better than a result variable
    invocation: Invocation,
    job: EmbeddingJob,
    source: DocumentSource,
    previous: Manifest | None,
    manifest_etag: str | None,
    *,
    dry_run: bool,
    claim: DocumentClaim | None = None,
) -> DocumentResult:
    """The run itself, once no other run embeds the document (`claim` held; none for a dry run)."""
    settings, outputs, ref = invocation.settings, job.outputs, source.ref
    model = job.recipe.model
    checkpoint = outputs.checkpoint(job.recipe)
    limits = Limits(max_chunks=settings.max_chunks_per_document, deadline=invocation.deadline)
    try:
        kept = await previous_chunks(outputs, previous, job.recipe)
        same_chunking = previous is not None and previous.chunking == job.recipe.chunking
        prepared = await prepare_chunks(invocation, source, limits, kept if same_chunking else None)
        if prepared is None:
            log.info("source_missing")
            return DocumentResult(ref.bucket, ref.key, "missing")
        ref = prepared.ref
        if previous is not None and await _up_to_date(previous, job, ref):
            # The bytes read are a version the manifest covers.
            return await endings.unchanged(invocation, job.outputs, ref, previous, dry_run=dry_run)
        document_format, chunks, ocr = prepared.format, prepared.chunks, prepared.ocr
        del prepared
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
            texts = [c.text for c in chunks]
            return endings.estimate(ref, texts, held | known.keys(), settings, ocr_pages=ocr.to_recognise)
        later = outputs.previous_vectors(job.recipe, held) if held else None
        invocation.embedder.works_in(outputs.keys.bucket)  # where instances share the quota
        async with outputs.writing_records(
            record_id=job.record_id, source=ref, recipe=job.recipe, metadata=job.metadata
        ) as records:
            try:
                await stream_embedded(
                    chunks,  # consumed: each chunk's text is freed once its record is written
                    known=known,
                    embed=lambda text: invocation.embedder.embed_once(text, content_hash(text), model),
                    concurrency=settings.embeddings_concurrency,
                    deadline=invocation.deadline,
                    on_embedded=checkpoint.add,
                    emit=records.add,
                    later=later,
                )
            except BaseException as exc:
                await endings.let_go(later)
                # An inline text is kept for reconcile only if a retry may succeed.
                retry = not isinstance(exc, Exception) or as_document_failure(exc) is None
                await endings.stop_early(job.outputs, job.submission, checkpoint, keep_submission=retry)
                raise
            await endings.let_go(later)
            await _before_replacing(outputs, source, ref.etag, manifest_etag, claim)
    except _Superseded:
        # A newer upload (or a delete, or another run) raced this one; leaving the block by this
        # exception aborted the records upload: the outputs in place stand.
        await endings.save_checkpoint(checkpoint)
        log.info("source_superseded")
        return DocumentResult(ref.bucket, ref.key, "superseded")
    except Exception as exc:
        failure = as_document_failure(exc)
        if failure is None:
            raise
        if isinstance(failure, UnexpectedFailure):
            log.error("source_failed_unexpectedly", error=failure.code, exc_info=exc)
        if dry_run:
            return DocumentResult(ref.bucket, ref.key, "would_park", reason=redact(str(failure)))
        await endings.save_checkpoint(checkpoint)
        return await endings.park(
            invocation, job.outputs, ref, job.recipe, failure, sidecar_etag=job.sidecar_etag
        )
    return await endings.complete(
        invocation,
        job.outputs,
        records,
        document_format=document_format,
        checkpoint=checkpoint,
        replacing=manifest_etag,
        sidecar_etag=job.sidecar_etag,
        ocr=ocr,
    )


def _refuse_foreign(previous: Manifest | None, deployment: str, job: EmbeddingJob) -> None:
    """ConfigurationError when another deployment's outputs, made with other settings, stand here."""
    if previous is not None and previous.foreign_to(deployment, job.recipe.fingerprint):
        raise ConfigurationError(
            f"{job.outputs.keys.manifest} was written by deployment {previous.deployment!r} with other "
            f"settings: give each deployment an OUTPUT_PREFIX (or OUTPUT_BUCKET) of its own"
        )


async def _up_to_date(manifest: Manifest, job: EmbeddingJob, ref: SourceRef) -> bool:
    """Whether the manifest vouches for this version of the source, these settings, this metadata
    (a new sidecar, or user metadata copied in place under the same ETag, rewrites the records
    without paying for a text), and the records object as it stands (a lost race can overwrite it)."""
    fingerprint = job.recipe.fingerprint
    if manifest.source.etag != ref.etag or manifest.fingerprint != fingerprint:
        return False  # no need to look at the records
    if manifest.metadata != job.metadata or manifest.sidecar_etag != job.sidecar_etag:
        return False
    records_etag = await job.outputs.records_etag()
    return manifest.vouches_for(source_etag=ref.etag, fingerprint=fingerprint, records_etag=records_etag)


async def _before_replacing(
    outputs: DocumentOutputs,
    source: DocumentSource,
    source_etag: str | None,
    manifest_etag: str | None,
    claim: DocumentClaim | None,
) -> None:
    """The last look before the records object is replaced: the claim must still be this run's, the
    source still the version read, and the manifest the one this run started from."""
    if claim is not None and claim.lost:
        raise _Superseded
    if not await source.still_current(source_etag):
        raise _Superseded
    if await outputs.manifest_etag() != manifest_etag:
        raise _Superseded
