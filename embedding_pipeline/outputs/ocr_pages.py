"""The pages Vision OCR read from one version of a document, and its operations under way:
`{OUTPUT_PREFIX}{K}.ocr.json` (layout.py).

Recognition is paid per page, so what was read is kept, by the source's ETag and the recognition's
settings, for as long as the document exists: a redelivery, a continuation, a reconcile, a change of
chunking or of the embeddings model reads the pages from here instead of paying again. An operation
is written here as soon as Vision has accepted it, before it is waited for: an invocation that ends
first hands the document on, and the next one collects the same operation. The object goes with the
document's other outputs when the source is deleted (store.py, reconcile's orphans).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import DocumentTooLarge
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.document_keys import DocumentKeys

OCR_STATE_VERSION = 1
# Recognised text is at most MAX_TEXT_CHARS of a document (4 bytes a character at worst, as JSON).
_MAX_STATE_BYTES = 160 * 1024 * 1024

log = get_logger()


class PendingOperation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    pages: list[int]  # the document's pages (1-based) it reads, in the order they were sent
    started_at: float  # the server's time (Unix seconds) when Vision accepted it


class OcrPages(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ocr_version: int = OCR_STATE_VERSION
    source_etag: str
    model: str
    languages: list[str]
    pages: dict[int, str] = Field(default_factory=dict)  # page number (1-based) → its text
    pending: list[PendingOperation] = Field(default_factory=list)
    requests: int = 0  # requests paid for this version, across every invocation
    recognized_pages: int = 0  # pages sent for recognition: what Vision bills

    def serves(self, source_etag: str, model: str, languages: list[str]) -> bool:
        """Whether these pages were read from this version with these settings."""
        return (
            self.ocr_version == OCR_STATE_VERSION
            and self.source_etag == source_etag
            and self.model == model
            and self.languages == languages
        )

    def waiting_for(self, page: int) -> bool:
        return any(page in operation.pages for operation in self.pending)


async def read_ocr_pages(
    storage: ObjectStorage, keys: DocumentKeys, *, source_etag: str, model: str, languages: list[str]
) -> OcrPages:
    """What was read from this version before; a fresh state when nothing was, or for another
    version or settings (a state that cannot be read is logged and started afresh: it is a cache)."""
    fresh = OcrPages(source_etag=source_etag, model=model, languages=languages)
    try:
        raw = await storage.get(keys.bucket, keys.ocr, max_bytes=_MAX_STATE_BYTES)
    except DocumentTooLarge:  # not ours, or damaged: never the document's fault
        log.warning("ocr_pages_unreadable", key=keys.ocr, error="too large")
        return fresh
    if raw is None:
        return fresh
    try:
        state = OcrPages.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        log.warning("ocr_pages_unreadable", key=keys.ocr, error=type(exc).__name__)
        return fresh
    return state if state.serves(source_etag, model, languages) else fresh


async def write_ocr_pages(storage: ObjectStorage, keys: DocumentKeys, state: OcrPages) -> None:
    body = json.dumps(state.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    await storage.put(keys.bucket, keys.ocr, body, content_type="application/json")
