"""HTTP requests and replies: the event parsed into a Request, errors in OpenAI's JSON shape, keys."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.errors import (
    ConfigurationError,
    CredentialsError,
    DimensionsNotSupported,
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
from embedding_pipeline.redact import redact, register_secret
from embedding_pipeline.settings import Settings
from handlers.batch import first_error
from handlers.events import HttpEvent

log = get_logger()


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str]
    body: bytes

    def json(self, *, finite: bool = False) -> Any:
        """The body parsed. `finite`: `NaN`, `Infinity`, `-Infinity` and numbers beyond a double
        (`1e999`), which Python's parser reads as floats no JSON holds, come out as `NotFinite`
        for the route's model to refuse, naming the field."""
        try:
            if finite:
                return json.loads(self.body or b"null", parse_constant=NotFinite, parse_float=_finite_float)
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "request body is not valid JSON", "invalid_json") from None
        except RecursionError:  # json's parser recurses once per level of nesting
            raise HttpError(400, "request body is nested too deeply", "invalid_json") from None


@dataclass(frozen=True, slots=True)
class NotFinite:
    """A number in a request body that no JSON (and no jsonb) holds, as it was written."""

    literal: str


def _finite_float(literal: str) -> float | NotFinite:
    value = float(literal)
    return value if math.isfinite(value) else NotFinite(literal)


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


def parse_request(event: dict[str, Any], max_body_bytes: int) -> Request:
    try:
        http = HttpEvent.model_validate(event)
    except ValidationError as exc:
        raise HttpError(400, f"malformed HTTP event: {first_error(exc)}", "invalid_event") from None
    try:
        body = (http.body or "").encode()
    except UnicodeEncodeError:  # the event's JSON held a lone surrogate escape ("\\ud800") in the body
        raise HttpError(400, "request body is not valid Unicode", "invalid_body") from None
    if http.isBase64Encoded and body:
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "body is marked base64 but is not", "invalid_body") from None
    if len(body) > max_body_bytes:
        raise HttpError(413, f"request body is over {max_body_bytes} bytes", "body_too_large")
    method = http.httpMethod.upper()
    path = http.route_path.rstrip("/") or ("/v1/embeddings" if method == "POST" else "/healthz")
    headers = {name.lower(): value for name, value in http.headers.items()}
    return Request(method, path, headers, dict(http.queryStringParameters or {}), body)


def check_api_key(settings: Settings, request: Request) -> None:
    keys = settings.api_keys
    if not keys:
        return
    for key in keys:  # a caller's key is a secret too: no log line or reply may show one
        register_secret(key)
    given = request.headers.get("x-api-key", "")
    if not given:
        raise HttpError(401, "missing X-Api-Key header", "missing_api_key")
    # Compare against every key, in constant time each, so timing tells nothing about which matched.
    # "surrogatepass": a header holding a lone surrogate is just a wrong key, not a crash.
    given_bytes = given.encode("utf-8", "surrogatepass")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    if not matched:
        raise HttpError(403, "invalid API key", "invalid_api_key")


# Most specific first: (error type, status, code, message for the caller; None means the error's own).
_ERROR_TABLE: list[tuple[type[PipelineError], int, str, str | None]] = [
    (InputTooLong, 400, "input_too_long", None),
    (EmbeddingsRejected, 400, "rejected_by_model", None),
    (DimensionsNotSupported, 400, "dimensions_not_supported", None),
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


def validation_message(exc: ValidationError) -> str:
    """One line naming the field and the problem, in the caller's terms."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where and not message.startswith(where) else message


def error_reply(exc: HttpError) -> dict[str, Any]:
    log.info("http_error", status=exc.status, code=exc.code)
    # The caller sees an error's own text for 4xx and configuration errors: never a secret in it.
    message = redact(exc.message)
    return reply(exc.status, {"error": {"message": message, "type": exc.kind, "code": exc.code}})
