"""A loopback emulator of Yandex AI Studio's OpenAI-compatible embeddings endpoint.

Behaves as the reference describes: one input per request (400 for an array of more than one), a
requests-per-second quota answered with 429 and Yandex's error text, a token limit answered with its
400 (`number of input tokens must be no more than 2000, got 2301`), `Authorization: Bearer` or
`Api-Key` required, configurable latency, and injectable faults (a share of 500s and 503s, requests
that hang past the client's timeout, dropped connections). Models are named by URI
(`emb://<folder>/text-search-doc/latest`): one it cannot parse is a 400 `Failed to parse model URI`,
one it does not serve a 400 `invalid model_uri`, as AI Studio's error-code table says. A `dimensions`
other than the model's own is a 400 naming it. Vectors are derived from the text's hash, so runs can
be compared. Used by tests that call `index.handler` for real and by the benchmarks.

    python -m testkit.yandex_emulator --port 8600 --rps 10 --latency-ms 50

The quota is the folder's: one window for every client, whatever process it runs in. It can be
changed while the emulator runs, as support raising or lowering a quota would:
`emulator.set_rps(20)` in process, or `curl -d '{"rps": 20}' http://127.0.0.1:8600/_emulator/quota`;
`GET /_emulator/stats` tells what it answered.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.loopback import LoopbackServer
from devstack.model_gate import model_refusal
from testkit.quota_window import QuotaWindow

CHARS_PER_TOKEN = 4  # the emulator's own token count: crude, deterministic


FAULT_KINDS = ("500", "503", "timeout", "drop")


@dataclass
class EmulatorConfig:
    dimensions: int = 256
    models: tuple[str, ...] = ("text-search-doc", "text-search-query")  # the names it serves
    rps: float = 10.0
    latency_s: float = 0.0
    max_tokens: int = 2000
    fault_rate: float = 0.0  # share of admitted requests that fail, each in one of `faults` ways
    faults: tuple[str, ...] = FAULT_KINDS
    hang_s: float = 3.0  # how long a "timeout" fault keeps the client waiting before hanging up
    seed: int = 7  # faults are drawn from a seeded generator: runs can be compared


@dataclass
class EmulatorStats:
    requests: int = 0
    ok: int = 0
    throttled: int = 0
    rejected: int = 0
    faults: int = 0
    texts: dict[str, int] = field(default_factory=dict)
    authorizations: set[str] = field(default_factory=set)  # the schemes and credentials callers sent
    # The x-data-logging-enabled header of every request (None where it was not sent), in order.
    data_logging: list[str | None] = field(default_factory=list)
    admitted_at: list[float] = field(default_factory=list)  # time.time() of each request the quota let in
    throttled_at: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self) -> dict[str, int]:
        with self.lock:
            return {
                "requests": self.requests,
                "ok": self.ok,
                "throttled": self.throttled,
                "rejected": self.rejected,
                "faults": self.faults,
            }


def vector_for(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = (seed * (dimensions * 4 // len(seed) + 1))[: dimensions * 4]
    return [round(value / 2**32 - 0.5, 6) for value in struct.unpack(f"<{dimensions}I", raw)]


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _admit(
    path: str, authorization: str, raw: bytes, quota: QuotaWindow, config: EmulatorConfig
) -> tuple[str, str]:
    """The request's (text, model), or a _Refusal with the status and message Yandex would send."""
    if path.rstrip("/") != "/v1/embeddings":
        raise _Refusal(404, "not found")
    if not authorization.startswith(("Bearer ", "Api-Key ")):
        raise _Refusal(401, "The token is invalid")
    if not quota.admit():
        quota_name = "ai.embeddingsTextEmbeddingRequestsPerSecond.rate"
        raise _Refusal(429, f"{quota_name} quota limit exceeded: allowed {config.rps:g} requests")
    try:
        body = json.loads(raw)
        text, model = body["input"], str(body["model"])
    except (ValueError, KeyError, TypeError):
        raise _Refusal(400, "invalid request body") from None
    if isinstance(text, list):
        if len(text) != 1:
            raise _Refusal(400, "input must contain exactly one text")
        text = text[0]
    if not isinstance(text, str) or not text:
        raise _Refusal(400, "input must be a non-empty string")
    if (refusal := model_refusal(model, config.models)) is not None:
        raise _Refusal(400, refusal)
    name = model.split("://", 1)[1].split("/")[1]
    dimensions = body.get("dimensions", config.dimensions)
    if dimensions != config.dimensions or isinstance(dimensions, bool):
        own = f"{config.dimensions}-dimensional"
        raise _Refusal(400, f"invalid dimensions {dimensions!r}: {name} returns only {own} vectors")
    tokens = max(1, len(text) // CHARS_PER_TOKEN)
    if tokens > config.max_tokens:
        raise _Refusal(400, f"number of input tokens must be no more than {config.max_tokens}, got {tokens}")
    return text, model


def make_handler(config: EmulatorConfig, stats: EmulatorStats) -> type[BaseHTTPRequestHandler]:
    quota = QuotaWindow(lambda: config.rps)
    chance = random.Random(config.seed)  # noqa: S311 - fault injection, not security
    chance_lock = threading.Lock()

    def draw_fault() -> str | None:
        with chance_lock:
            if config.fault_rate <= 0 or chance.random() >= config.fault_rate:
                return None
            return chance.choice(config.faults)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            with stats.lock:
                stats.rejected += status != 429
            self._reply(status, {"error": {"grpcCode": status, "httpCode": status, "message": message}})

        def _inject(self, fault: str | None) -> bool:
            """Fail this request the way a server under stress does; True if it failed."""
            if fault is None:
                return False
            with stats.lock:
                stats.faults += 1
            if fault in ("500", "503"):
                self._reply(int(fault), {"error": {"message": "internal error", "httpCode": int(fault)}})
            elif fault == "timeout":
                time.sleep(config.hang_s)
                self.close_connection = True
            else:  # "drop": the connection closes with no answer at all
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
            return True

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/_emulator/stats":
                self._reply(200, {**stats.summary(), "rps": config.rps})
            else:
                self._reply(404, {"error": {"message": "not found"}})

        def _set_quota(self, raw: bytes) -> None:
            try:
                rps = float(json.loads(raw)["rps"])
            except (ValueError, KeyError, TypeError):
                self._reply(400, {"error": {"message": 'send {"rps": <number>}'}})
                return
            if rps <= 0:
                self._reply(400, {"error": {"message": "rps must be positive"}})
                return
            config.rps = rps
            self._reply(200, {"rps": rps})

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") == "/_emulator/quota":
                self._set_quota(raw)
                return
            with stats.lock:
                stats.requests += 1
                stats.authorizations.add(self.headers.get("Authorization", ""))
                stats.data_logging.append(self.headers.get("x-data-logging-enabled"))
            try:
                text, model = _admit(self.path, self.headers.get("Authorization", ""), raw, quota, config)
            except _Refusal as refusal:
                with stats.lock:
                    if refusal.status == 429:
                        stats.throttled += 1
                        stats.throttled_at.append(time.time())
                self._error(refusal.status, refusal.message)
                return
            with stats.lock:
                stats.admitted_at.append(time.time())
            if self._inject(draw_fault()):
                return
            tokens = max(1, len(text) // CHARS_PER_TOKEN)
            if config.latency_s:
                time.sleep(config.latency_s)
            with stats.lock:
                stats.ok += 1
                stats.texts[text] = stats.texts.get(text, 0) + 1
            self._reply(
                200,
                {
                    "object": "list",
                    "data": [
                        {"object": "embedding", "index": 0, "embedding": vector_for(text, config.dimensions)}
                    ],
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                },
            )

    return Handler


class YandexEmulator(LoopbackServer):
    """The emulator in a background thread: `with YandexEmulator(config) as emulator: emulator.url`."""

    def __init__(self, config: EmulatorConfig | None = None, port: int = 0) -> None:
        self.config = config or EmulatorConfig()
        self.stats = EmulatorStats()
        super().__init__(make_handler(self.config, self.stats), port)

    @property
    def url(self) -> str:
        return super().url + "/v1"

    def set_rps(self, rps: float) -> None:
        """Change the folder's quota while clients run (support raised or lowered it)."""
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.config.rps = rps


def main() -> None:
    parser = argparse.ArgumentParser(description="Yandex embeddings API emulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--dimensions", type=int, default=256)
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail")
    args = parser.parse_args()
    config = EmulatorConfig(
        dimensions=args.dimensions, rps=args.rps, latency_s=args.latency_ms / 1000, fault_rate=args.fault_rate
    )
    with YandexEmulator(config, port=args.port) as emulator:
        print(f"emulating {emulator.url}/embeddings at {args.rps:g} rps", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
