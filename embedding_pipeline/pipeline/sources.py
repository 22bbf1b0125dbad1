"""Where a document's bytes come from: one small interface the embedding run calls (embed.py), one
implementation per kind of source, chosen by whoever starts the run.

    ObjectSource   an object in a bucket (an upload, a reference, a sweep's document)
    InlineSource   a text that arrived in a queue message or an HTTP submission

A source says which version of the document it is (`ref`: what the records will describe), what
metadata of its own it carries (an object's user metadata and sidecar), loads and parses that
version under the run's limits, and says, just before new outputs replace the old, whether it is
still that version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from embedding_pipeline.bucket_policy import sidecar_key
from embedding_pipeline.clients.storage import ObjectInfo, ObjectStorage
from embedding_pipeline.errors import BadMetadata, DocumentTooLarge
from embedding_pipeline.ocr.reader import NO_OCR, OcrTally
from embedding_pipeline.outputs.document_keys import DocumentKeys
from embedding_pipeline.outputs.models import SourceRef
from embedding_pipeline.settings import Settings
from embedding_pipeline.stages.documents import Limits, ParsedDocument, parse_document
from embedding_pipeline.stages.documents.metadata import (
    SIDECAR_MAX_BYTES,
    from_user_metadata,
    merged,
    parse_sidecar,
)
from embedding_pipeline.stages.documents.model import whole
from embedding_pipeline.stages.vectorize import content_hash

if TYPE_CHECKING:
    from embedding_pipeline.ocr.reader import OcrReader

_MAX_KEY_BYTES = 1024  # Object Storage's limit: a longer sidecar name cannot exist


@dataclass(frozen=True, slots=True)
class DocumentMetadata:
    values: dict[str, Any]  # into every record, under each chunk's own fields
    sidecar_etag: str | None  # the sidecar they were read from (None: there is none)


@dataclass(frozen=True, slots=True)
class Loaded:
    document: ParsedDocument
    ref: SourceRef  # the version these bytes are: the ETag of the read itself, not of an earlier HEAD
    ocr: OcrTally = NO_OCR  # what reading its scanned pages cost, or (a dry run) would


class DocumentSource(Protocol):
    @property
    def ref(self) -> SourceRef:
        """The version the run starts from (a source that changes meanwhile reads as another)."""
        ...

    async def document_metadata(self) -> DocumentMetadata | None:
        """The metadata the document carries besides its text (None: the job's own stands);
        BadMetadata when it cannot be taken."""
        ...

    async def load(self, limits: Limits) -> Loaded | None:
        """The document read and parsed; None when it is gone."""
        ...

    async def still_current(self, etag: str | None) -> bool:
        """Whether the source is still at `etag`: checked last, before the records are replaced."""
        ...


class ObjectSource:
    """`s3://bucket/key`, as a HEAD found it."""

    def __init__(
        self,
        storage: ObjectStorage,
        settings: Settings,
        bucket: str,
        found: ObjectInfo,
        *,
        ocr: OcrReader | None = None,
        ocr_keys: DocumentKeys | None = None,
        dry_run: bool = False,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._bucket = bucket
        self._found = found
        self._ocr = ocr  # None: pages only OCR can read are skipped (a document of nothing else parks)
        self._ocr_keys = ocr_keys
        self._dry_run = dry_run

    @property
    def ref(self) -> SourceRef:
        found = self._found
        return SourceRef(bucket=self._bucket, key=found.key, etag=found.etag, size=found.size)

    async def document_metadata(self) -> DocumentMetadata:
        """The object's user metadata (from the HEAD that found it), and its sidecar's over it: one GET,
        which finds none for most documents."""
        key = sidecar_key(self._found.key)
        sidecar, etag = None, None
        if len(key.encode("utf-8", "surrogatepass")) <= _MAX_KEY_BYTES:
            try:
                read = await self._storage.get_with_info(self._bucket, key, max_bytes=SIDECAR_MAX_BYTES)
            except DocumentTooLarge:
                found = await self._storage.head(self._bucket, key)
                bad = BadMetadata(f"{key}: over the sidecar's limit of {SIDECAR_MAX_BYTES} bytes")
                bad.sidecar_etag = None if found is None else found.etag
                raise bad from None
            if read is not None:
                etag = read[1].etag
                try:
                    sidecar = parse_sidecar(read[0], key)
                except BadMetadata as bad:
                    bad.sidecar_etag = etag
                    raise
        return DocumentMetadata(merged(from_user_metadata(self._found.metadata), sidecar), etag)

    async def load(self, limits: Limits) -> Loaded | None:
        settings, key = self._settings, self._found.key
        if self._found.size > settings.max_source_bytes:
            raise DocumentTooLarge(
                f"{self._found.size} bytes is over MAX_SOURCE_BYTES={settings.max_source_bytes}"
            )
        read = await self._storage.get_with_info(self._bucket, key, max_bytes=settings.max_source_bytes)
        if read is None:
            return None
        data, info = read
        document = parse_document(
            data,
            key,
            text_field=settings.json_text_field,
            limits=limits,
            csv_delimiter=settings.csv_delimiter,
        )
        ref = SourceRef(bucket=self._bucket, key=key, etag=info.etag, size=info.size)
        if not document.unread_pages:
            return Loaded(document, ref)
        from embedding_pipeline.ocr.reading import read_unread_pages  # noqa: PLC0415 - scans only

        pages = await read_unread_pages(
            self._ocr,
            self._ocr_keys,
            info.etag or hashlib.sha256(data).hexdigest(),  # a server without ETags: the bytes
            document,
            data,
            dry_run=self._dry_run,
        )
        return Loaded(pages.document, ref, pages.tally)

    async def still_current(self, etag: str | None) -> bool:
        current = await self._storage.head(self._bucket, self._found.key)
        return current is not None and current.etag == etag


class InlineSource:
    """A text that arrived whole, as the document `document` in `bucket`. Its content hash plays the
    ETag's part: the same text with the same settings costs nothing the second time."""

    def __init__(self, bucket: str, document: str, text: str) -> None:
        self._text = text
        self._ref = SourceRef(bucket=bucket, key=document, etag=content_hash(text)[:32], size=len(text))

    @property
    def ref(self) -> SourceRef:
        return self._ref

    async def document_metadata(self) -> None:
        return None  # an inline text's metadata came with it (the job's)

    async def load(self, limits: Limits) -> Loaded | None:
        return Loaded(whole(self._text, "text"), self._ref)

    async def still_current(self, etag: str | None) -> bool:
        return True  # a text cannot change: another submission of the id is another version
