"""What an HTTP caller gets back: a JSON reply, or an error in OpenAI's shape mapped from the core's."""

from __future__ import annotations

import json
from typing import Any

from embedding_pipeline.errors import (
    ConfigurationError,
    CredentialsError,
    DimensionsNotSupported,
    DocumentBusy,
    EmbeddingsAuthError,
    EmbeddingsError,
    EmbeddingsModelError,
    EmbeddingsRateLimited,
    EmbeddingsRejected,
    InputTooLong,
    OutOfTime,
    PipelineError,
    StorageError,
    TransientError,
    VectorIndexError,
)
from embedding_pipeline.logs import get_logger
from embedding_pipeline.redact import redact

log = get_logger()

Reply = tuple[int, Any]  # a route's answer: status and the JSON payload

# API Gateway caps responses at 2.5 MB (the function alone at 3.5 MB): with a margin for the envelope.
REPLY_LIMIT_BYTES = 2_400_000


class HttpError(Exception):
    """An answer other than success, in OpenAI's error shape."""

    def __init__(self, status: int, message: str, code: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.kind = kind or _KINDS.get(status, "api_error")


_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# Most specific first: (error type, status, code, message for the caller; None means the error's own).
_ERROR_TABLE: list[tuple[type[PipelineError], int, str, str | None]] = [
    (InputTooLong, 400, "input_too_long", None),
    (EmbeddingsRejected, 400, "rejected_by_model", None),
    (DimensionsNotSupported, 400, "dimensions_not_supported", None),
    (DocumentBusy, 409, "document_busy", None),
    (EmbeddingsRateLimited, 429, "upstream_rate_limited", "the embeddings quota is exhausted; retry later"),
    (EmbeddingsAuthError, 502, "upstream_auth", "the embeddings API refused the function's credentials"),
    (
        EmbeddingsModelError,
        502,
        "upstream_model",
        "the embeddings API refuses the function's configured model",
    ),
    (EmbeddingsError, 502, "upstream_error", "the embeddings API failed; retry later"),
    (StorageError, 503, "storage_unavailable", "Object Storage is unavailable; retry later"),
    (CredentialsError, 503, "credentials_unavailable", "the function has no credentials right now"),
    (OutOfTime, 503, "out_of_time", "the request ran out of time; retry"),
    (VectorIndexError, 503, "index_unavailable", "the vector index is unavailable; retry later"),
    (TransientError, 503, "unavailable", "temporarily unavailable; retry later"),
    (ConfigurationError, 500, "configuration_error", None),
]


def map_error(exc: PipelineError) -> HttpError:
    for error_type, status, code, message in _ERROR_TABLE:
        if isinstance(exc, error_type):
            kind = "api_error" if status >= 500 else None
            return HttpError(status, message or str(exc), code, kind)
    return HttpError(400, str(exc), getattr(exc, "code", "invalid_request"))


def reply(status: int, payload: Any) -> dict[str, Any]:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        # An echoed lone surrogate goes out as the JSON escape it came in as: the body stays UTF-8.
        "body": body.encode("utf-8", "backslashreplace").decode("utf-8"),
        "isBase64Encoded": False,
    }


def error_reply(exc: HttpError) -> dict[str, Any]:
    log.info("http_error", status=exc.status, code=exc.code)
    # The caller sees an error's own text for 4xx and configuration errors: never a secret in it.
    message = redact(exc.message)
    return reply(exc.status, {"error": {"message": message, "type": exc.kind, "code": exc.code}})
