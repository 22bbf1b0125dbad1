"""The product's one exception tree.

Triggers need a single distinction: is the failure the input's fault (permanent: park it with its
reason, never retry) or the environment's (transient: raise so the platform delivers again)?

    PipelineError
    ├── PermanentError              the input can never succeed; write an error record, do not retry
    │   ├── UnsupportedDocument     binary data, an unknown or broken format, no text field
    │   ├── DocumentTooLarge        over MAX_SOURCE_BYTES or MAX_CHUNKS_PER_DOCUMENT
    │   ├── EmptyDocument           nothing to embed after parsing
    │   ├── UnsafeKey               an object key the pipeline refuses to derive output keys from
    │   └── EmbeddingsRejected      the API answered 400 for a reason other than length
    ├── TransientError              the environment failed; retrying later may succeed
    │   ├── StorageError            Object Storage unreachable, 5xx, or still failing after retries
    │   │   └── StorageAccessDenied 401/403: credentials or roles are wrong (fixable, so not permanent)
    │   ├── EmbeddingsError         the embeddings API still failing after retries
    │   │   ├── EmbeddingsRateLimited   429 after every retry: the quota is exhausted
    │   │   └── EmbeddingsAuthError     401/403: token, API key or role
    │   ├── CredentialsError        no IAM token from the context, the environment or the metadata service
    │   └── OutOfTime               the invocation's deadline came first; progress is checkpointed
    ├── InputTooLong                internal signal: the API refused a text as too many tokens; split it
    └── ConfigurationError          a bad setting; raised at cold start with the variable's name

Third-party exceptions (httpx, pydantic) are mapped to these at the module that calls the library.
"""

from __future__ import annotations


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


class UnsafeKey(PermanentError):
    code = "unsafe_key"


class EmbeddingsRejected(PermanentError):
    code = "embeddings_rejected"


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


class CredentialsError(TransientError):
    code = "credentials_error"


class OutOfTime(TransientError):
    code = "out_of_time"


class InputTooLong(PipelineError):
    """The embeddings API refused a text as longer than its token limit."""


class ConfigurationError(PipelineError):
    """A setting is missing or invalid; the message names the environment variable."""
