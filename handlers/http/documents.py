"""Documents over HTTP.

POST /v1/documents             submit {"key": ...} or {"id": ..., "text": ...}; 202 with where outputs go
GET  /v1/documents/{key}       the manifest's summary, the parked error, or 404 (?bucket= names the
                               source's bucket when it is not SOURCE_BUCKET); "queued" for a
                               submission's status_url (?submitted=) until its outputs exist
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from pydantic import ValidationError

from embedding_pipeline.bucket_policy import (
    WorkRefused,
    bucket_refusal,
    default_bucket,
    reference_bucket,
    require_default_bucket,
    status_buckets,
)
from embedding_pipeline.errors import OutOfTime
from embedding_pipeline.messages import WORK_MESSAGE, InlineRecord, ObjectReference, ReconcileStep
from embedding_pipeline.outputs.names import inline_document
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import Settings
from handlers.http.replies import HttpError, Reply
from handlers.http.requests import Request
from handlers.validation import validation_message

if TYPE_CHECKING:
    from embedding_pipeline.outputs.store import DocumentStatus

# How long a submission's status_url answers "queued" while nothing of it exists yet. A queued message
# is delivered at most 5 times, a visibility timeout (660 s) apart: after 55 minutes it has been
# embedded, parked with its reason, or dead-lettered, and "queued" would no longer be true.
QUEUED_FOR_S = 3600


async def submit_document(runtime: Runtime, request: Request, context: Any) -> Reply:
    try:
        submission = WORK_MESSAGE.validate_python(request.json())
    except ValidationError as exc:
        raise HttpError(
            400, validation_message(exc, json_body=True, prefer_given=True, tagged=True), "invalid_request"
        ) from None
    if isinstance(submission, ReconcileStep) or getattr(submission, "sweep", None) is not None:
        # Reconcile's own messages: a caller that could send them could skew a sweep's report.
        raise HttpError(
            400, "reconcile and sweep are set by reconcile itself, not by callers", "invalid_request"
        )
    settings = runtime.settings
    require_default_bucket(settings, "accepting documents")
    destination = _destination(settings, submission)
    async with runtime.invocation(context, "http") as invocation:
        keys = invocation.outputs(destination.source_bucket).document(destination.document).keys
        where = {
            "document": destination.document,
            "manifest": f"s3://{keys.bucket}/{keys.manifest}",
            "status_url": destination.status_url(settings, submitted=int(time.time())),
        }
        if invocation.queue is not None:
            await invocation.queue.send(submission.body())
            return 202, {"status": "queued", **where}
        # Imported here: the embeddings route, the most frequent cold start, never parses documents.
        from handlers.messages import perform  # noqa: PLC0415

        try:
            result = await perform(invocation, submission).work
        except OutOfTime:
            # The checkpoint keeps what was embedded; the next reconcile (timer) finishes the document.
            return 202, {"status": "in_progress", **where}
    if result.outcome == "claimed":
        # Another request (or a trigger) embeds this document now: this one paid nothing.
        retry = result.retry_after_s or 1
        raise HttpError(
            409, f"another run embeds {destination.document} now: try again in {retry} s", "document_busy"
        )
    if result.outcome in ("parked", "refused"):
        raise HttpError(422, result.reason or "the document cannot be processed", "document_parked")
    if result.outcome == "missing":
        raise HttpError(
            404, f"no object s3://{destination.source_bucket}/{destination.document}", "source_missing"
        )
    return 202, {"status": result.outcome, "chunks": result.chunks, **where}


@dataclass(frozen=True, slots=True)
class _Destination:
    source_bucket: str  # where the source is read (an inline record's: the default bucket)
    document: str

    def status_url(self, settings: Settings, *, submitted: int) -> str:
        """Where `GET /v1/documents/...` answers for it; the bucket is named unless it is the default,
        and the time of submission lets it answer "queued" before anything of the document exists."""
        query = {} if self.source_bucket == default_bucket(settings) else {"bucket": self.source_bucket}
        return f"/v1/documents/{quote(self.document)}?{urlencode({**query, 'submitted': submitted})}"


def _destination(settings: Settings, submission: ObjectReference | InlineRecord) -> _Destination:
    if isinstance(submission, InlineRecord):
        return _Destination(
            require_default_bucket(settings, "an inline text"), inline_document(submission.id)
        )
    try:
        return _Destination(reference_bucket(settings, submission.key, submission.bucket), submission.key)
    except WorkRefused as exc:
        # Naming what the function may not read is a permission problem; anything else, a bad request.
        status = 403 if exc.code in ("bucket_not_allowed", "key_not_allowed") else 400
        raise HttpError(status, exc.reason, exc.code) from None


async def document_status(runtime: Runtime, request: Request, context: Any) -> Reply:
    document = unquote(request.path.removeprefix("/v1/documents/"))
    settings = runtime.settings
    if "bucket" in request.query:
        buckets: tuple[str, ...] = (request.query["bucket"],)
        if (refusal := bucket_refusal(settings, buckets[0])) is not None:
            raise HttpError(403, refusal, "bucket_not_allowed")
    else:
        # Outputs lie beside their source unless OUTPUT_BUCKET is set: a document submitted from one of
        # EXTRA_SOURCE_BUCKETS is found there (name it with ?bucket= when a key is in several).
        buckets = status_buckets(settings)
    async with runtime.invocation(context, "http") as invocation:
        for bucket in buckets:
            status = await invocation.outputs(bucket).document(document).status()
            if status is not None:
                return 200, {"document": document, "bucket": bucket, **_status_reply(status)}
    submitted = _submitted_at(request.query.get("submitted"))
    if submitted is not None and -60 <= time.time() - submitted <= QUEUED_FOR_S:  # a minute of skew
        # Submitted moments ago: not "not found" to a client that polls at once.
        return 200, {"document": document, "status": "queued", "submitted_at": submitted}
    raise HttpError(404, f"no outputs for {document}", "not_found")


def _submitted_at(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _status_reply(status: DocumentStatus) -> dict[str, Any]:
    manifest, error = status.manifest, status.error
    summary = None
    if manifest is not None:
        summary = {
            "chunks": manifest.chunks,
            "model": manifest.model,
            "dimensions": manifest.dimensions,
            "source": manifest.source.model_dump(),
            "records": f"s3://{manifest.records.bucket}/{manifest.records.key}",
            "usage": manifest.usage.model_dump(),
            "created_at": manifest.created_at,
        }
    if error is not None:
        # The newest version failed; the vectors of the version before it (if any) still stand.
        reply: dict[str, Any] = {"status": status.state, "error": error.error, "reason": error.reason}
        return {**reply, "previous": summary} if summary is not None else reply
    if summary is not None:
        return {"status": status.state, **summary}
    return {"status": status.state}
