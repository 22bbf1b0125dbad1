"""Serve a Cloud Function's handler over HTTP on loopback, as the platform would.

Each request becomes the event a direct call delivers (`httpMethod`, `headers`, `multiValueHeaders`,
`queryStringParameters`, `requestContext`, `body`, `isBase64Encoded`, empty `url`/`params`), with the
`Authorization` and `Cookie` headers stripped as the platform strips them, and the route passed in
`?path=`; or, with payload "1.0", the API Gateway v1 shape with the path in `path`. The handler's
reply (`statusCode`, `headers`, `body`, `isBase64Encoded`) goes back to the client.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.loopback import LoopbackServer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
_STRIPPED = {"authorization", "cookie"}


@dataclass
class GatewayContext:
    timeout_s: float = 60.0
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    token: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_s - (time.monotonic() - self.started)) * 1000)


def to_event(method: str, target: str, headers: dict[str, str], body: bytes, payload: str) -> dict[str, Any]:
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    kept = {name: value for name, value in headers.items() if name.lower() not in _STRIPPED}
    text = body.decode("utf-8", errors="strict") if body else ""
    event: dict[str, Any] = {
        "httpMethod": method,
        "headers": kept,
        "multiValueHeaders": {name: [value] for name, value in kept.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()},
        "requestContext": {
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent", "")},
            "httpMethod": method,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "requestTimeEpoch": int(time.time()),
        },
        "body": text,
        "isBase64Encoded": False,
    }
    if payload == "1.0":
        event.update({"version": "1.0", "resource": "/{proxy+}", "path": parts.path, "pathParameters": {}})
    else:  # a direct call: the platform gives no path, so the route travels in ?path=
        event.update({"url": "", "params": {}, "multiValueParams": {}, "pathParams": {}})
        if parts.path not in ("", "/"):
            event["queryStringParameters"] = {**query, "path": parts.path}
    return event


class FunctionGateway(LoopbackServer):
    def __init__(self, handler: Handler, *, port: int = 0, payload: str = "direct") -> None:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = to_event(self.command, self.path, dict(self.headers.items()), body, gateway.payload)
                try:
                    result = gateway.handler(event, GatewayContext())
                except Exception:  # the platform answers 502 for a crashed invocation
                    result = {"statusCode": 502, "body": '{"errorMessage": "invocation failed"}'}
                raw = result.get("body") or ""
                data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
                self.send_response(int(result.get("statusCode", 200)))
                for name, value in (result.get("headers") or {}).items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.handler = handler
        self.payload = payload
        super().__init__(RequestHandler, port)

    def __enter__(self) -> FunctionGateway:
        self.start()
        return self
