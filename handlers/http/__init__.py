"""HTTP: direct function calls and API Gateway (payload 0.1 and 1.0), parsed, checked and routed.

How the path reaches the function (see README): API Gateway 1.0 sends it in `path`; 0.1 in `url`; a
direct call has neither, so it names the route in `?path=/v1/...`, or gets the default route (POST:
`/v1/embeddings`, GET: `/healthz`). Application keys travel in `X-Api-Key`, because the platform
strips `Authorization` from direct calls. Every error is JSON in OpenAI's shape, an unexpected one
included (500, with its traceback in the log only).

requests.py parses the event and checks keys; router.py picks the route (one module per group:
health.py, embeddings.py, documents.py, search.py); replies.py shapes answers and errors.
"""

from __future__ import annotations

import traceback
from typing import Any

from pydantic import ValidationError

from embedding_pipeline.errors import PipelineError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.runtime import Runtime
from handlers.http.replies import HttpError, error_reply, map_error, reply
from handlers.http.requests import parse_request
from handlers.http.router import route
from handlers.validation import validation_message

log = get_logger()


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        request = parse_request(event, runtime.settings.http_max_body_bytes)
        log.info("http_request", method=request.method, path=request.path)
        status, payload = await route(runtime, request, context)
    except HttpError as exc:
        return error_reply(exc)
    except ValidationError as exc:
        return error_reply(HttpError(400, validation_message(exc), "invalid_request"))
    except PipelineError as exc:
        return error_reply(map_error(exc))
    except Exception as exc:
        # A bug, never the caller's business: a generic answer, the details in one log line.
        log.error("http_unexpected_error", error=exc, traceback="".join(traceback.format_exception(exc)))
        return error_reply(HttpError(500, "internal error; the request was not completed", "internal_error"))
    return reply(status, payload)
