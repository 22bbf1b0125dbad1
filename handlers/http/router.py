"""The HTTP API's routes: which handler answers a path and method, and whether it needs a key.

GET  /healthz                  liveness, no key needed (health.py)
POST /v1/embeddings            OpenAI-compatible embeddings (embeddings.py)
POST /v1/documents             submit a document by key or inline (documents.py)
GET  /v1/documents/{key}       what became of a document (documents.py)
POST /v1/search                the nearest chunks from the vector index (search.py)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from embedding_pipeline.outputs.names import names_output_area
from embedding_pipeline.runtime import Runtime
from handlers.http.documents import document_status, submit_document
from handlers.http.embeddings import create_embeddings
from handlers.http.health import healthz
from handlers.http.replies import HttpError, Reply
from handlers.http.requests import Request, check_api_key
from handlers.http.search import search_chunks

Route = Callable[[Runtime, Request, Any], Awaitable[Reply]]

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
