"""Serve a Cloud Function's handler over HTTP on loopback, as the platform would.

Each request becomes the event a direct call delivers (`httpMethod`, `headers`, `multiValueHeaders`,
`queryStringParameters`, `requestContext`, `body`, `isBase64Encoded`, empty `url`/`params`), with the
`Authorization` and `Cookie` headers stripped as the platform strips them, and the route passed in
`?path=`; or, with payload "1.0", the API Gateway v1 shape with the path in `path`. The handler's
reply (`statusCode`, `headers`, `body`, `isBase64Encoded`) goes back to the client.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.context import LocalContext
from devstack.events import HttpShape, http_event
from devstack.loopback import LoopbackServer

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class FunctionGateway(LoopbackServer):
    def __init__(self, handler: Handler, *, port: int = 0, payload: HttpShape = "direct") -> None:
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                event = http_event(
                    self.command, self.path, dict(self.headers.items()), body, shape=gateway.payload
                )
                try:
                    result = gateway.handler(event, LocalContext(timeout_s=60.0))
                except Exception:  # the platform answers 502 for a crashed invocation
                    result = {"statusCode": 502, "body": '{"errorMessage": "invocation failed"}'}
                raw = result.get("body") or ""
                data = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
                try:
                    self.send_response(int(result.get("statusCode", 200)))
                    for name, value in (result.get("headers") or {}).items():
                        self.send_header(name, str(value))
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the caller gave up waiting: nobody to answer

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.handler = handler
        self.payload = payload
        super().__init__(RequestHandler, port)
