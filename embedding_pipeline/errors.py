"""The product's one exception tree.

Triggers need a single distinction: is the failure the input's fault (permanent: park it with its
reason, never retry) or the environment's (transient: raise so the platform delivers again)?

    PipelineError
    ├── PermanentError              the input can never succeed; write an error record, do not retry
    │   ├── UnsupportedDocument     binary data, an unknown or broken format, no text field
    │   ├── DocumentTooLarge        over MAX_SOURCE_BYTES or MAX_CHUNKS_PER_DOCUMENT
    │   ├── EmptyDocument           nothing to embed after parsing
    │   ├── BadMetadata             the document's metadata sidecar is not a small flat JSON object
    │   ├── UnsafeKey               an object key the pipeline refuses to derive output keys from
    │   ├── EmbeddingsRejected      the API refused this text (400) while it accepts others
    │   ├── DimensionsNotSupported  the model refuses or ignores a requested `dimensions` (HTTP)
    │   ├── WrongVectorLength       the API answers this text, after retries, with a vector of another
    │   │                           length while it answers other texts with the expected one
    │   ├── OcrRefused              Vision OCR refused the document's image or pages (400)
    │   ├── OcrOff                  only OCR could read it, and OCR_ENABLED=false: tried again by
    │   │                           reconcile once OCR is on
    │   └── UnexpectedFailure       anything else raised while handling one document: a bug or a
    │                               crafted input no parser anticipated; parked, never retried forever
    ├── TransientError              the environment failed; retrying later may succeed
    │   ├── StorageError            Object Storage unreachable, 5xx, or still failing after retries
    │   │   └── StorageAccessDenied 401/403: credentials or roles are wrong (fixable, so not permanent)
    │   ├── EmbeddingsError         the embeddings API still failing after retries
    │   │   ├── EmbeddingsRateLimited   429 after every retry: the quota is exhausted
    │   │   ├── EmbeddingsAuthError     401/403: token, API key or role        (configuration)
    │   │   └── EmbeddingsModelError    the model is unknown, refuses every text, or answers an
    │   │                               instance's first text with another length (configuration)
    │   ├── OcrError                Vision OCR still failing after retries, or its operation failed
    │   │   └── OcrAuthError        401/403: token or role (ai.vision.user)          (configuration)
    │   ├── CredentialsError        no IAM token from the context, the environment or the metadata service
    │   ├── DocumentBusy            another run embeds this document now (its claim stands): deliver
    │   │                           again later, when it has finished or its claim has lapsed
    │   ├── VectorIndexError        the vector index (PostgreSQL) unreachable, refusing, or misconfigured:
    │   │                           derived data, so it never parks a document nor stops the bucket's work
    │   └── OutOfTime               the invocation's deadline came first; progress is checkpointed
    │       └── OcrPending          Vision OCR still recognises the document's pages: look again later
    ├── InputTooLong                internal signal: the API refused a text as too many tokens; split it
    └── ConfigurationError          a bad setting; raised at cold start with the variable's name

Third-party exceptions (httpx, pydantic) are mapped to these at the module that calls the library.
Whatever else escapes while one document is handled becomes UnexpectedFailure at one boundary
(`as_document_failure`): only what is proven transient is retried.

A configuration problem (`is_configuration_problem`) is one no document could succeed with: it stops
a run and touches nothing (no document is parked, no output is deleted).

Error texts may carry what a library put in them (a driver's parse error echoes its DSN): each goes
through `redact.redact` before it is logged, recorded in the bucket or answered over HTTP.
"""

from __future__ import annotations

from embedding_pipeline.redact import redact


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class PermanentError(PipelineError):
    """The input itself is at fault: retrying cannot help."""

    code = "permanent"


class UnsupportedDocument(PermanentError):
    code = "unsupported_document"


class DocumentTooLarge(PermanentError):
    code = "document_too_large"


class EmptyDocument(PermanentError):
    code = "empty_document"


class BadMetadata(PermanentError):
    """A document's metadata sidecar (`KEY.metadata.json`) that cannot be taken: the document's own fault."""

    code = "bad_metadata"
    sidecar_etag: str | None = None  # the sidecar found bad: a new version of it is worth a try


class UnsafeKey(PermanentError):
    code = "unsafe_key"


class EmbeddingsRejected(PermanentError):
    code = "embeddings_rejected"


class DimensionsNotSupported(PermanentError):
    """A caller asked for vectors of a length the model cannot give: its fault, not the text's."""

    code = "dimensions_not_supported"


class WrongVectorLength(PermanentError):
    """The API answered this text, attempt after attempt, with a vector of another length than it
    gives other texts: garbage for this text alone, so its document is parked."""

    code = "wrong_vector_length"


class OcrRefused(PermanentError):
    """Vision OCR refused what the document holds (an image too large, a page it cannot read)."""

    code = "ocr_refused"


class OcrOff(PermanentError):
    """A scan or an image, and OCR is off: parked until OCR_ENABLED=true (reconcile retries it then)."""

    code = "ocr_off"


class UnexpectedFailure(PermanentError):
    """An exception nobody mapped, raised while handling one document; the reason names its class."""

    code = "unexpected_error"


class TransientError(PipelineError):
    """The environment is at fault: the same input may succeed later."""

    code = "transient"


class StorageError(TransientError):
    code = "storage_error"


class StorageAccessDenied(StorageError):
    code = "storage_access_denied"


class EmbeddingsError(TransientError):
    code = "embeddings_error"


class EmbeddingsRateLimited(EmbeddingsError):
    code = "embeddings_rate_limited"


class EmbeddingsAuthError(EmbeddingsError):
    code = "embeddings_auth_error"


class EmbeddingsModelError(EmbeddingsError):
    """The model is unknown, or the API refuses every text with it: a setting is wrong, not a text."""

    code = "embeddings_model_error"


class OcrError(TransientError):
    code = "ocr_error"


class OcrAuthError(OcrError):
    code = "ocr_auth_error"


class CredentialsError(TransientError):
    code = "credentials_error"


class OutOfTime(TransientError):
    code = "out_of_time"


class OcrPending(OutOfTime):
    """Vision OCR is still recognising the document's pages when the invocation must end: the
    operation is kept (pipeline/ocr.py), and the document is looked at again `retry_after_s` later."""

    code = "ocr_pending"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DocumentBusy(TransientError):
    """Another run embeds this document now; this delivery pays nothing and comes again."""

    code = "document_busy"


class VectorIndexError(TransientError):
    """The vector index failed: the records in Object Storage stand, and reconcile writes it later.

    Its text is redacted as it is made: it reaches logs, `_index/` marks, reconcile reports and
    HTTP replies, and a driver's message may echo the DSN."""

    code = "vector_index_error"

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class InputTooLong(PipelineError):
    """The embeddings API refused a text as longer than its token limit."""


class ConfigurationError(PipelineError):
    """A setting is missing or invalid; the message names the environment variable."""


def is_configuration_problem(exc: BaseException) -> bool:
    """Whether no document could succeed while this lasts: stop the run, park nothing, delete nothing."""
    return isinstance(
        exc,
        ConfigurationError
        | EmbeddingsAuthError
        | EmbeddingsModelError
        | OcrAuthError
        | StorageAccessDenied
        | CredentialsError,
    )


def as_document_failure(exc: Exception) -> PermanentError | None:
    """The one boundary for a failure while one document is handled: the PermanentError to park it
    with, or None when `exc` must be raised instead (transient: a retry may succeed; configuration:
    no document could succeed, so none is parked). Anything nobody mapped parks, with its class named."""
    if isinstance(exc, PermanentError):
        return exc
    if isinstance(exc, TransientError | ConfigurationError):
        return None
    # Redacted before it is cut: the reason goes to the bucket, and a DSN cut short hides its shape.
    return UnexpectedFailure(redact(f"{type(exc).__name__}: {exc}")[:500])
