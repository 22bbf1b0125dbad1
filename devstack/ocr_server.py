"""A loopback stand-in for Yandex Vision OCR, answering from a real engine (tesseract): `make run`'s OCR.

It speaks Vision OCR's REST API as the pipeline's client does, on two bases of one server:
`{url}/ocr/v1` (OCR_URL: recognizeText, recognizeTextAsync, getRecognition) and `{url}/operations`
(OCR_OPERATIONS_URL: GET /{id}). Requests without `Authorization` get 401; content Vision OCR would
refuse gets 400 (devstack/ocr_engine.py checks it); an asynchronous recognition runs on a background
thread, its operation `done: false` until every page is read, then done with a `response`, or with
an `error` if the engine failed. Results stay in memory for as long as the server runs.
What it does not imitate: blocks, lines and words (empty lists; fullText carries the text), quotas
(no 429), and the folder header (not checked).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.loopback import LoopbackServer, Running
from devstack.ocr_engine import BadContent, EngineError, ImagePage, Page, PdfPage, Tesseract, pages_of

OCR_PATH = "/ocr/v1"
OPERATIONS_PATH = "/operations"
MAX_FILE_BYTES = 10 * 1024 * 1024
_MAX_BODY_BYTES = MAX_FILE_BYTES * 4 // 3 + 64 * 1024  # the file in base64, and the JSON around it
_MARKDOWN_MODELS = ("markdown", "math-markdown")
# gRPC codes, as Yandex's JSON errors carry them, with the HTTP status each is sent with.
INVALID_ARGUMENT, NOT_FOUND, INTERNAL, UNAUTHENTICATED = 3, 5, 13, 16
_STATUS = {INVALID_ARGUMENT: 400, NOT_FOUND: 404, INTERNAL: 500, UNAUTHENTICATED: 401}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "details": []}


def annotation(page: Page, model: str) -> dict[str, Any]:
    """Vision OCR's textAnnotation for one page."""
    return {
        "width": str(page.width),
        "height": str(page.height),
        "blocks": [],
        "entities": [],
        "tables": [],
        "fullText": page.text,
        "markdown": page.text if model in _MARKDOWN_MODELS else "",
        "rotate": "ANGLE_0",
    }


def _result(page: Page, number: int, model: str) -> dict[str, Any]:
    return {"result": {"textAnnotation": annotation(page, model), "page": str(number)}}


@dataclass
class _Operation:
    id: str
    model: str
    created_at: str = field(default_factory=_now)
    modified_at: str = ""
    done: bool = False
    error: dict[str, Any] | None = None
    pages: list[Page] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "description": "OCR async recognition",
            "createdAt": self.created_at,
            "createdBy": "local",
            "modifiedAt": self.modified_at or self.created_at,
            "done": self.done,
            "metadata": None,
        }
        if self.error is not None:
            body["error"] = self.error
        elif self.done:
            body["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return body


class Operations:
    """Asynchronous recognitions: each read on a worker thread, its state kept until the server stops."""

    def __init__(self, engine: Tesseract, workers: int = 2) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._operations: dict[str, _Operation] = {}
        # Each tesseract runs on one core (OMP_THREAD_LIMIT=1): two at a time fill a 2-core laptop.
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr")

    def start(self, pages: list[ImagePage | PdfPage], model: str) -> dict[str, Any]:
        operation = _Operation(id=f"local{uuid.uuid4().hex[:15]}", model=model)
        with self._lock:
            self._operations[operation.id] = operation
            started = operation.as_json()
        self._pool.submit(self._read, operation, pages)
        return started

    def _read(self, operation: _Operation, pending: list[ImagePage | PdfPage]) -> None:
        pages: list[Page] = []
        error: dict[str, Any] | None = None
        try:
            pages = [page.read(self._engine) for page in pending]
        except EngineError as exc:
            error = _error(INVALID_ARGUMENT, str(exc))
        except Exception as exc:  # any other failure must still end the operation, not leave it pending
            error = _error(INTERNAL, f"the local OCR failed: {exc!r}")
        with self._lock:
            operation.pages, operation.error = pages, error
            operation.done, operation.modified_at = True, _now()

    def get(self, operation_id: str) -> dict[str, Any] | None:
        with self._lock:
            operation = self._operations.get(operation_id)
            return None if operation is None else operation.as_json()

    def recognition(self, operation_id: str) -> tuple[int, bytes]:
        """getRecognition's status and body: one JSON line per page once done."""
        with self._lock:
            operation = self._operations.get(operation_id)
            if operation is None:
                return _reply(_error(NOT_FOUND, f"Operation {operation_id} not found"))
            if not operation.done:
                return _reply(_error(NOT_FOUND, f"Operation {operation_id} is not done yet"))
            if operation.error is not None:
                return _reply(operation.error)
            lines = [_result(page, n, operation.model) for n, page in enumerate(operation.pages)]
        return 200, "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _reply(error: dict[str, Any]) -> tuple[int, bytes]:
    return _STATUS.get(error["code"], 500), json.dumps(error, ensure_ascii=False).encode()


def parse_request(raw: bytes) -> tuple[list[ImagePage | PdfPage], str]:
    """A recognition request's pages (not yet read) and model; BadContent for what Vision OCR refuses."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadContent(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("content"), str) or not body["content"]:
        raise BadContent("content is required: the file in base64")
    try:
        data = base64.b64decode(body["content"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadContent(f"content is not valid base64: {exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise BadContent(f"the file is {len(data)} bytes, over the limit of {MAX_FILE_BYTES}")
    return pages_of(str(body.get("mimeType", "")), data), str(body.get("model") or "page")


def read_single_page(pages: list[ImagePage | PdfPage], engine: Tesseract) -> Page:
    """recognizeText's page: it takes a PDF of exactly one."""
    if len(pages) != 1:
        raise BadContent(f"recognizeText takes 1 page, this PDF has {len(pages)}: use recognizeTextAsync")
    return pages[0].read(engine)


def _handler(engine: Tesseract, operations: Operations) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the pipeline's httpx client uses it

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the pipeline logs what it asked and what came back."""

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload, ensure_ascii=False).encode())

        def _refuse(self, code: int, message: str) -> None:
            self._send(*_reply(_error(code, message)))

        def _authorized(self) -> bool:
            if self.headers.get("Authorization"):
                return True
            self._refuse(UNAUTHENTICATED, "The request is missing a valid API key or IAM token")
            return False

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == f"{OCR_PATH}/getRecognition":
                if self._authorized():
                    operation_id = parse_qs(url.query).get("operationId", [""])[0]
                    self._send(*operations.recognition(operation_id))
            elif url.path.startswith(f"{OPERATIONS_PATH}/"):
                if self._authorized():
                    operation_id = url.path.removeprefix(f"{OPERATIONS_PATH}/")
                    found = operations.get(operation_id)
                    if found is None:
                        self._refuse(NOT_FOUND, f"Operation {operation_id} not found")
                    else:
                        self._json(200, found)
            else:
                self._refuse(NOT_FOUND, f"no such method: GET {url.path}")

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            length = int(self.headers.get("Content-Length") or 0)
            if path not in (f"{OCR_PATH}/recognizeText", f"{OCR_PATH}/recognizeTextAsync"):
                self.close_connection = True  # the body stays unread
                self._refuse(NOT_FOUND, f"no such method: POST {path}")
                return
            if length > _MAX_BODY_BYTES:
                self.close_connection = True
                self._refuse(
                    INVALID_ARGUMENT, f"the request is {length} bytes, over what 10 MB of file takes"
                )
                return
            raw = self.rfile.read(length)
            if not self._authorized():
                return
            try:
                pages, model = parse_request(raw)
                if path.endswith("Async"):
                    self._json(200, operations.start(pages, model))
                    return
                page = read_single_page(pages, engine)
            except (BadContent, EngineError) as exc:
                self._refuse(INVALID_ARGUMENT, str(exc))
                return
            self._json(200, _result(page, 0, model))

    return Handler


class OcrServer(Running):
    """Vision OCR's API on 127.0.0.1, read by `engine`; `port` 0 takes any free one."""

    def __init__(self, engine: Tesseract, port: int = 0) -> None:
        self.engine = engine
        self._operations = Operations(engine)
        self._server = LoopbackServer(_handler(engine, self._operations), port)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def ocr_url(self) -> str:
        """What OCR_URL is set to."""
        return self._server.url + OCR_PATH

    @property
    def operations_url(self) -> str:
        """What OCR_OPERATIONS_URL is set to."""
        return self._server.url + OPERATIONS_PATH

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._operations.close()
