"""The HTTP API's routes.

GET  /healthz                  liveness, no key needed
POST /v1/embeddings            OpenAI-compatible embeddings of a string or a list of strings; a
                               `dimensions` other than EMBEDDINGS_DIMENSIONS goes to the API, and a
                               model that cannot honour it is a 400, never silently ignored
POST /v1/documents             submit {"key": ...} or {"id": ..., "text": ...}; 202 with where outputs go
GET  /v1/documents/{key}       the manifest's summary, the parked error, or 404 (?bucket= names the
                               source's bucket when it is not SOURCE_BUCKET)
POST /v1/search                {"query": ..., "top_k", "prefix", "filter"}: the nearest chunks from the
                               vector index (VECTOR_DB_DSN); 501 when there is none
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote, unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from embedding_pipeline import __version__
from embedding_pipeline.bucket_policy import (
    WorkRefused,
    bucket_refusal,
    default_bucket,
    reference_bucket,
    require_default_bucket,
    status_buckets,
)
from embedding_pipeline.clients.embeddings import Embedding
from embedding_pipeline.errors import EmbeddingsModelError, OutOfTime
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.messages import (
    WORK_MESSAGE,
    InlineRecord,
    ObjectReference,
    ReconcileStep,
    Text,
    invalid_reason,
)
from embedding_pipeline.outputs.layout import inline_document, names_output_area
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import Settings
from embedding_pipeline.text_safety import encodable
from handlers.http_messages import HttpError, Request, check_api_key
from handlers.search_request import SearchRequest

if TYPE_CHECKING:
    from embedding_pipeline.outputs.store import DocumentStatus

Reply = tuple[int, Any]
Route = Callable[[Runtime, Request, Any], Awaitable[Reply]]

_JSON_FLOAT_BYTES = 22  # a float as JSON text, with its comma: the reply-size estimate
_REPLY_LIMIT_BYTES = 3_300_000  # the platform caps replies at 3.5 MB; keep a margin for the envelope


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send `user`...

    input: str | list[str]
    model: Text | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(strict=True, gt=0)] | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: object) -> object:
        """Each text checked here, so that an error names its index."""
        if isinstance(value, str):
            return _text(value, "input")
        if not isinstance(value, list):
            raise _invalid_input("input must be a string or a list of strings")
        if not value:
            raise _invalid_input("input must not be empty: send at least one text")
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise _invalid_input(f"input[{index}] must be a string (token arrays are not supported)")
            _text(text, f"input[{index}]")
        return value


def _text(text: str, where: str) -> str:
    if not text.strip():
        raise _invalid_input(f"{where} is empty")
    try:
        return encodable(text)
    except ValueError as exc:
        raise _invalid_input(f"{where} is {exc}") from None


def _invalid_input(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_input", message)


async def healthz(_runtime: Runtime, _request: Request, _context: Any) -> Reply:
    return 200, {"status": "ok", "version": __version__}


async def create_embeddings(runtime: Runtime, request: Request, context: Any) -> Reply:
    settings = runtime.settings
    body = EmbeddingsRequest.model_validate(request.json())
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.http_max_inputs:
        raise HttpError(413, f"at most {settings.http_max_inputs} inputs per request", "too_many_inputs")
    # The configured length needs no parameter: the API gives it anyway, and not every model takes one.
    dimensions = None if body.dimensions == settings.embeddings_dimensions else body.dimensions
    per_vector = (dimensions or settings.embeddings_dimensions) * (
        _JSON_FLOAT_BYTES if body.encoding_format == "float" else 6
    )
    if per_vector * len(texts) > _REPLY_LIMIT_BYTES:
        raise HttpError(413, "the reply would exceed the 3.5 MB limit: send fewer inputs", "reply_too_large")
    model = settings.resolve_model(body.model)
    try:
        async with runtime.invocation(context) as invocation:
            vectors = await _embed_unique(invocation, texts, model, dimensions)
    except EmbeddingsModelError:
        if model in (settings.document_model_uri, settings.query_model_uri):
            raise  # the function's own setting: a 502, and the client logged why
        message = f"model {model} is unknown to the embeddings API, or refuses every text"
        raise HttpError(404, message, "model_not_found") from None
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(vectors[text], body.encoding_format)}
        for index, text in enumerate(texts)
    ]
    # What was paid: one request per distinct text, whatever the repeats.
    tokens = sum(embedding.tokens for embedding in vectors.values())
    return 200, {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


async def _embed_unique(
    invocation: Invocation, texts: list[str], model: str, dimensions: int | None
) -> dict[str, Embedding]:
    """One API request per distinct text, all under the instance's rate limiter; the first failure wins."""
    unique = list(dict.fromkeys(texts))

    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                text: group.create_task(
                    invocation.embedder.embed_text(text, model, dimensions=dimensions, interactive=True)
                )
                for text in unique
            }
    except ExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return {text: task.result() for text, task in tasks.items()}


def _encode(embedding: Embedding, encoding_format: str) -> list[float] | str:
    if encoding_format == "float":
        return embedding.vector.tolist()
    # Little-endian float32, as OpenAI's clients decode it (Yandex itself offers no base64).
    return base64.b64encode(struct.pack(f"<{len(embedding.vector)}f", *embedding.vector)).decode()


async def search_chunks(runtime: Runtime, request: Request, context: Any) -> Reply:
    settings = runtime.settings
    index = runtime.vector_index
    if index is None:
        raise HttpError(
            501, "no vector index is configured: set VECTOR_DB_DSN to enable search", "index_not_configured"
        )
    body = SearchRequest.model_validate(request.json(finite=True))
    if body.top_k > settings.search_max_top_k:
        raise HttpError(400, f"top_k must be at most {settings.search_max_top_k}", "top_k_too_large")
    # Imported here: the embeddings route, the most frequent cold start, never searches.
    from embedding_pipeline.vector_index.search import hit_reply, search  # noqa: PLC0415

    async with runtime.invocation(context) as invocation:
        found = await search(
            invocation, index, body.query, top_k=body.top_k, prefix=body.prefix, metadata=body.filter
        )
    payload = {
        "object": "list",
        "data": [hit_reply(hit) for hit in found.hits],
        "model": found.query_model,
        "usage": {"prompt_tokens": found.tokens, "total_tokens": found.tokens},
    }
    # Metadata is the uploader's and may be large: a reply over the platform's limit would be lost.
    if len(json.dumps(payload, ensure_ascii=False).encode()) > _REPLY_LIMIT_BYTES:
        raise HttpError(
            413, "the reply would exceed the 3.5 MB limit: ask for a smaller top_k", "reply_too_large"
        )
    return 200, payload


async def submit_document(runtime: Runtime, request: Request, context: Any) -> Reply:
    try:
        submission = WORK_MESSAGE.validate_python(request.json())
    except ValidationError as exc:
        raise HttpError(400, invalid_reason(exc), "invalid_request") from None
    if isinstance(submission, ReconcileStep) or getattr(submission, "sweep", None) is not None:
        # Reconcile's own messages: a caller that could send them could skew a sweep's report.
        raise HttpError(
            400, "reconcile and sweep are set by reconcile itself, not by callers", "invalid_request"
        )
    settings = runtime.settings
    require_default_bucket(settings, "accepting documents")
    destination = _destination(settings, submission)
    async with runtime.invocation(context) as invocation:
        keys = invocation.outputs(destination.source_bucket).document(destination.document).keys
        where = {
            "document": destination.document,
            "manifest": f"s3://{keys.bucket}/{keys.manifest}",
            "status_url": destination.status_url(settings),
        }
        if invocation.queue is not None:
            await invocation.queue.send(submission.body())
            return 202, {"status": "queued", **where}
        # Imported here: the embeddings route, the most frequent cold start, never parses documents.
        from handlers.messages import perform  # noqa: PLC0415

        try:
            result = await perform(invocation, submission, holder="http").work
        except OutOfTime:
            # The checkpoint keeps what was embedded; the next reconcile (timer) finishes the document.
            return 202, {"status": "in_progress", **where}
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

    def status_url(self, settings: Settings) -> str:
        """Where `GET /v1/documents/...` answers for it; the bucket is named unless it is the default."""
        path = f"/v1/documents/{quote(self.document)}"
        return (
            path
            if self.source_bucket == default_bucket(settings)
            else f"{path}?bucket={quote(self.source_bucket)}"
        )


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
    async with runtime.invocation(context) as invocation:
        for bucket in buckets:
            status = await invocation.outputs(bucket).document(document).status()
            if status is not None:
                return 200, {"document": document, "bucket": bucket, **_status_reply(status)}
    raise HttpError(404, f"no outputs for {document}", "not_found")


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


ROUTES: dict[str, dict[str, tuple[Route, bool]]] = {
    # path → method → (handler, needs an API key)
    "/healthz": {"GET": (healthz, False)},
    "/v1/embeddings": {"POST": (create_embeddings, True)},
    "/v1/documents": {"POST": (submit_document, True)},
    "/v1/search": {"POST": (search_chunks, True)},
}
# prefix → method → (handler, needs an API key), for paths that end in a document key
PREFIX_ROUTES: dict[str, dict[str, tuple[Route, bool]]] = {
    "/v1/documents/": {"GET": (document_status, True)},
}


def _prefix_route(path: str) -> dict[str, tuple[Route, bool]] | None:
    for prefix, methods in PREFIX_ROUTES.items():
        # A name inside an output area (`_errors/...`) is no document: its records are not for callers.
        if path.startswith(prefix) and not names_output_area(unquote(path.removeprefix(prefix))):
            return methods
    return None


async def route(runtime: Runtime, request: Request, context: Any) -> Reply:
    methods = ROUTES.get(request.path) or _prefix_route(request.path)
    if methods is None:
        raise HttpError(404, f"no route for {request.path}", "unknown_route")
    if request.method not in methods:
        raise HttpError(405, f"{request.method} is not allowed on {request.path}", "method_not_allowed")
    handler, needs_key = methods[request.method]
    if needs_key:
        check_api_key(runtime.settings, request)
    return await handler(runtime, request, context)
