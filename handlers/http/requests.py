"""An HTTP event parsed into a Request, its body read as JSON, and the caller's API key checked."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.finite_json import NotFinite, loads_finite
from embedding_pipeline.redact import register_secret
from embedding_pipeline.settings import Settings
from handlers.events import HttpEvent
from handlers.http.replies import HttpError
from handlers.validation import validation_message

# NotFinite is the core's; the routes that read bodies with `finite=True` import it from here.
__all__ = ["NotFinite", "Request", "check_api_key", "parse_request"]


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
                return loads_finite(self.body or b"null")
            return json.loads(self.body or b"null")
        except ValueError:
            raise HttpError(400, "request body is not valid JSON", "invalid_json") from None
        except RecursionError:  # json's parser recurses once per level of nesting
            raise HttpError(400, "request body is nested too deeply", "invalid_json") from None


def parse_request(event: dict[str, Any], max_body_bytes: int) -> Request:
    try:
        http = HttpEvent.model_validate(event)
    except ValidationError as exc:
        raise HttpError(400, f"malformed HTTP event: {validation_message(exc)}", "invalid_event") from None
    try:
        body = (http.body or "").encode()
    except UnicodeEncodeError:  # the event's JSON held a lone surrogate escape ("\\ud800") in the body
        raise HttpError(400, "request body is not valid Unicode", "invalid_body") from None
    if http.isBase64Encoded and body:
        try:
            body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise HttpError(400, "body is marked base64 but is not", "invalid_body") from None
    method = http.httpMethod.upper()
    path = http.route_path.rstrip("/") or ("/v1/embeddings" if method == "POST" else "/healthz")
    if len(body) > max_body_bytes:
        message = f"request body is over {max_body_bytes} bytes (HTTP_MAX_BODY_BYTES)"
        if path == "/v1/embeddings":
            message += (
                ": send fewer texts per request (LangChain: OpenAIEmbeddings(chunk_size=...); "
                "LlamaIndex: OpenAIEmbedding(embed_batch_size=...))"
            )
        raise HttpError(413, message, "body_too_large")
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
