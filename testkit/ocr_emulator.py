"""A loopback emulator of Yandex Vision OCR's REST API, as notes/ocr-contract.md describes it.

`POST {url}/recognizeText` answers one page at once; `POST {url}/recognizeTextAsync` starts an operation
that `GET {operations_url}/{id}` reports on and `GET {url}/getRecognition?operationId=` reads, one JSON
line per page. Both URLs are on one port: `url` ends in `/ocr/v1` (the OCR_URL setting), `operations_url`
in `/operations` (OCR_OPERATIONS_URL). It refuses what the service refuses (no Authorization: 401; a bad
body, a type other than JPEG, PNG or PDF, more than 10 MB, a PDF of several pages sent synchronously or of
more than 200 asynchronously, an unknown model: 400) and says what the scan's ground-truth marker says
(testkit/ocr_truth.py): tests know what the "OCR" will read.

What a test can make it do (OcrConfig): a requests-per-second quota over a sliding second, shared by
recognizeText, recognizeTextAsync and getRecognition (polling an operation does not count), answered with
429 and code 8; operations that stay pending for a while, for some polls, or forever; operations that end
in an error; every recognition refused with a 400; a seeded share of 500s and 503s; latency. OcrStats
records every request (time, endpoint, status, pages charged) and every operation's pages.

    python -m testkit.ocr_emulator --port 8700 --rps 10

`GET /_emulator/stats` tells what it answered; `POST /_emulator/quota {"rps": 20}` changes the quota.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.loopback import LoopbackServer
from testkit.ocr_answers import (
    INTERNAL,
    NOT_FOUND,
    PERMISSION_DENIED,
    RESOURCE_EXHAUSTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    Limits,
    OcrError,
    invalid,
    page_results,
    parse_request,
)
from testkit.ocr_metering import (
    COUNTED,
    ENDPOINTS,
    GET_RECOGNITION,
    OPERATION,
    RECOGNIZE,
    RECOGNIZE_ASYNC,
    OcrStats,
    RequestRecord,
)
from testkit.ocr_operations import Operations, Readiness
from testkit.quota_window import QuotaWindow

__all__ = ["ENDPOINTS", "OcrConfig", "OcrEmulator", "OcrStats", "RequestRecord", "main"]

MB = 1024 * 1024


@dataclass
class OcrConfig:
    rps: float = 10.0  # the folder's quota, for the endpoints in COUNTED
    latency_s: float = 0.0  # added to every answer of an endpoint in COUNTED
    ready_after_s: float = 0.0  # an operation is pending at least this long...
    ready_after_polls: int = 0  # ...and for this many reads of it
    never_finish: bool = False  # operations stay pending forever
    seconds_per_page: float = 0.0  # ...and this long for each of its pages (Vision's reading speed)
    failure_code: int = 3  # what a failed operation's error says: 3 (the content's fault), 13 (internal)
    fail_operations: float = 0.0  # share of operations that end done with an error (1.0: all)
    refuse_content: str | None = None  # a 400 with this message for every recognition ("unsupported image")
    deny_access: bool = False  # a 403 (code 7) for every request that authenticates
    fault_rate: float = 0.0  # share of admitted requests answered with a 500 or a 503
    faults: tuple[str, ...] = ("500", "503")
    fault_endpoints: frozenset[str] = frozenset(ENDPOINTS)
    max_content_bytes: int = 10 * MB
    max_megapixels: float = 20.0
    max_async_pages: int = 200
    seed: int = 7  # faults and failing operations are drawn from a seeded generator: runs compare


_METHODS = {RECOGNIZE: "POST", RECOGNIZE_ASYNC: "POST", OPERATION: "GET", GET_RECOGNITION: "GET"}


def _endpoint(method: str, path: str) -> tuple[str, str]:
    """(endpoint name, operation id) of a request; the name is the method and path for anything else."""
    parts = urlsplit(path)
    name, operation_id = "", ""
    if parts.path in ("/ocr/v1/recognizeText", "/ocr/v1/recognizeTextAsync", "/ocr/v1/getRecognition"):
        name = parts.path.rsplit("/", 1)[1]
        operation_id = (parse_qs(parts.query).get("operationId") or [""])[0]
    elif parts.path.startswith("/operations/") and parts.path.count("/") == 2:
        name, operation_id = OPERATION, parts.path.rsplit("/", 1)[1]
    if _METHODS.get(name) != method:
        return f"{method} {parts.path}", ""
    return name, operation_id


class _Service:
    """The emulated API behind the HTTP handler: one per emulator, shared by its threads."""

    def __init__(self, config: OcrConfig, stats: OcrStats) -> None:
        self.config, self.stats = config, stats
        self.operations = Operations()
        self.window = QuotaWindow(lambda: config.rps)
        self._chance = random.Random(config.seed)  # noqa: S311 - fault injection, not security
        self._chance_lock = threading.Lock()

    def draw(self, share: float) -> bool:
        with self._chance_lock:
            return share > 0 and self._chance.random() < share

    def readiness(self) -> Readiness:
        config = self.config
        return Readiness(
            config.ready_after_s, config.ready_after_polls, config.never_finish, config.seconds_per_page
        )

    def limits(self) -> Limits:
        return Limits(self.config.max_content_bytes, self.config.max_megapixels, self.config.max_async_pages)

    def answer(self, endpoint: str, operation_id: str, authorization: str, raw: bytes) -> tuple[Any, int]:
        """The reply's payload (a JSON value, or a list of them for JSON Lines) and the pages charged."""
        if endpoint not in ENDPOINTS:
            raise OcrError(404, NOT_FOUND, f"no such method: {endpoint}")
        scheme, _, credential = authorization.partition(" ")
        if scheme not in ("Bearer", "Api-Key") or not credential.strip():
            raise OcrError(401, UNAUTHENTICATED, "UNAUTHENTICATED: the request has no valid Authorization")
        if self.config.deny_access:
            raise OcrError(403, PERMISSION_DENIED, "PERMISSION_DENIED: no access to the folder")
        if endpoint in COUNTED and not self.window.admit():
            raise OcrError(429, RESOURCE_EXHAUSTED, f"RESOURCE_EXHAUSTED: quota of {self.config.rps:g} rps")
        if endpoint in (OPERATION, GET_RECOGNITION):
            self._inject_fault(endpoint)
            if endpoint == OPERATION:
                return self.operations.read(operation_id, self.readiness(), poll=True), 0
            return self.operations.results(operation_id, self.readiness()), 0
        recognition = parse_request(raw, self.limits(), asynchronous=endpoint == RECOGNIZE_ASYNC)
        if self.config.refuse_content is not None:
            raise invalid(self.config.refuse_content)
        self._inject_fault(endpoint)
        if endpoint == RECOGNIZE:
            return page_results(recognition)[0], 1
        operation = self.operations.start(
            page_results(recognition),
            fails=self.draw(self.config.fail_operations),
            failure_code=self.config.failure_code,
        )
        self.window.charge(len(recognition.pages) - 1)
        with self.stats.lock:
            self.stats.operation_pages[operation.id] = len(recognition.pages)
        return operation.as_json(), len(recognition.pages)

    def _inject_fault(self, endpoint: str) -> None:
        """A 500 or a 503 for a share of the valid requests, before they do anything, as a service under
        stress answers."""
        if endpoint not in self.config.fault_endpoints or not self.draw(self.config.fault_rate):
            return
        with self._chance_lock:
            status = int(self._chance.choice(self.config.faults))
        if status == 503:
            raise OcrError(503, UNAVAILABLE, "UNAVAILABLE: the service is temporarily unavailable")
        raise OcrError(status, INTERNAL, "INTERNAL: internal server error")


def make_handler(service: _Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _serve(self, raw: bytes) -> None:
            arrived = time.time()
            endpoint, operation_id = _endpoint(self.command, self.path)
            authorization = self.headers.get("Authorization", "")
            pages = 0
            try:
                payload, pages = service.answer(endpoint, operation_id, authorization, raw)
                status = 200
                if endpoint == GET_RECOGNITION:  # JSON Lines: one object per page, in page order
                    body = b"".join(json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in payload)
                else:
                    body = json.dumps(payload, ensure_ascii=False).encode()
            except OcrError as error:
                status, body = error.status, json.dumps(error.body()).encode()
            if endpoint in COUNTED and status not in (401, 403, 429) and service.config.latency_s:
                time.sleep(service.config.latency_s)
            record = RequestRecord(
                arrived,
                endpoint,
                status,
                pages,
                operation_id or None,
                authorization,
                self.headers.get("x-folder-id"),
                self.headers.get("x-data-logging-enabled"),
            )
            with service.stats.lock:
                service.stats.requests.append(record)
            self._send(status, body)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/_emulator/stats":
                self._send(200, json.dumps({**service.stats.summary(), "rps": service.config.rps}).encode())
            else:
                self._serve(b"")

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") == "/_emulator/quota":
                self._set_quota(raw)
            else:
                self._serve(raw)

        def _set_quota(self, raw: bytes) -> None:
            try:
                rps = float(json.loads(raw)["rps"])
            except (ValueError, KeyError, TypeError):
                self._send(400, b'{"message": "send {\\"rps\\": <number>}"}')
                return
            if rps <= 0:
                self._send(400, b'{"message": "rps must be positive"}')
                return
            service.config.rps = rps
            self._send(200, json.dumps({"rps": rps}).encode())

    return Handler


class OcrEmulator(LoopbackServer):
    """The emulator in a background thread: `with OcrEmulator(OcrConfig(rps=5)) as ocr: ocr.url`."""

    def __init__(self, config: OcrConfig | None = None, port: int = 0) -> None:
        self.config = config or OcrConfig()
        self.stats = OcrStats()
        super().__init__(make_handler(_Service(self.config, self.stats)), port)

    @property
    def url(self) -> str:
        """The OCR_URL setting for this emulator."""
        return super().url + "/ocr/v1"

    @property
    def operations_url(self) -> str:
        """The OCR_OPERATIONS_URL setting for this emulator."""
        return super().url + "/operations"

    def set_rps(self, rps: float) -> None:
        """Change the folder's quota while clients run (support raised or lowered it)."""
        if rps <= 0:
            raise ValueError("rps must be positive")
        self.config.rps = rps


def main() -> None:
    parser = argparse.ArgumentParser(description="Yandex Vision OCR API emulator on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8700)
    parser.add_argument("--rps", type=float, default=10.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--ready-after-s", type=float, default=0.0, help="how long operations stay pending")
    parser.add_argument(
        "--ready-after-polls", type=int, default=0, help="reads that find an operation pending"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests answered 500/503")
    parser.add_argument("--fail-operations", type=float, default=0.0, help="share of operations that fail")
    args = parser.parse_args()
    config = OcrConfig(
        rps=args.rps,
        latency_s=args.latency_ms / 1000,
        ready_after_s=args.ready_after_s,
        ready_after_polls=args.ready_after_polls,
        fault_rate=args.fault_rate,
        fail_operations=args.fail_operations,
    )
    with OcrEmulator(config, port=args.port) as emulator:
        print(f"emulating {emulator.url} and {emulator.operations_url} at {args.rps:g} rps", flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
