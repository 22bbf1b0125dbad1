"""GET /healthz: liveness and the version, answered without a key and without touching anything."""

from __future__ import annotations

from typing import Any

from embedding_pipeline import __version__
from embedding_pipeline.runtime import Runtime
from handlers.http.replies import Reply
from handlers.http.requests import Request


async def healthz(_runtime: Runtime, _request: Request, _context: Any) -> Reply:
    return 200, {"status": "ok", "version": __version__}
