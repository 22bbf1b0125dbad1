"""The records object of one document, written in document order as vectors arrive."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from embedding_pipeline.outputs.document_keys import DocumentKeys
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import Manifest, ManifestUsage, Recipe, SourceRef, utc_now
from embedding_pipeline.stages.vectorize import EmbeddedChunk


class RecordsWriter(Protocol):
    """Where the lines go: an object upload (`ObjectStorage.open_writer`), or a local file."""

    etag: str | None  # known once the records are complete

    async def write(self, data: bytes) -> None: ...


class RecordsSink:
    """Writes one record per embedded chunk and tallies what the manifest will report.

    Open it with `DocumentOutputs.writing_records`: the object appears only when that block ends.
    """

    def __init__(
        self,
        writer: RecordsWriter,
        keys: DocumentKeys,
        *,
        record_id: str,  # records are "{record_id}#{n}"
        source: SourceRef,  # what the records describe
        recipe: Recipe,
        metadata: dict[str, Any],  # carried into every record, under each chunk's own
    ) -> None:
        self._writer = writer
        self._keys = keys
        self._record_id = record_id
        self.source = source
        self._recipe = recipe
        self._metadata = metadata
        self.chunks = 0
        self.tokens = 0
        self.billed_tokens = 0
        self._paid: set[str] = set()  # hashes this version paid for: a repeated text is billed once

    async def add(self, item: EmbeddedChunk) -> None:
        chunk = item.chunk
        if self._metadata:
            chunk = replace(chunk, metadata={**self._metadata, **chunk.metadata})
        line = record_line(
            record_id=self._record_id,
            number=self.chunks,
            chunk=chunk,
            text_hash=item.text_hash,
            vector=item.vector,
            tokens=item.tokens,
            model=self._recipe.model,
            source=self.source,
        )
        await self._writer.write(line)
        self.chunks += 1
        self.tokens += item.tokens
        if not item.reused and item.text_hash not in self._paid:
            self._paid.add(item.text_hash)
            self.billed_tokens += item.tokens

    @property
    def reused(self) -> int:
        """Chunks this version did not pay for: previous records, repeats, another document's request."""
        return self.chunks - len(self._paid)

    @property
    def written(self) -> SourceRef:
        """The records object, with its ETag once the upload completed."""
        return SourceRef(bucket=self._keys.bucket, key=self._keys.records, etag=self._writer.etag)

    @property
    def usage(self) -> ManifestUsage:
        return ManifestUsage(
            tokens=self.tokens,
            billed_tokens=self.billed_tokens,
            api_requests=len(self._paid),
            reused_chunks=self.reused,
        )

    def manifest(
        self,
        *,
        document_format: str,
        deployment: str,
        sidecar_etag: str | None = None,
        ocr_pages: int = 0,
        ocr_requests: int = 0,
    ) -> Manifest:
        """The manifest that vouches for these records, once they are complete (`sidecar_etag`: the
        metadata sidecar their metadata was read from; `ocr_pages`, `ocr_requests`: what Vision OCR was
        sent for this version)."""
        recipe = self._recipe
        return Manifest(
            source=self.source,
            records=self.written,
            model=recipe.model,
            dimensions=recipe.dimensions,
            chunks=self.chunks,
            format=document_format,
            usage=self.usage.model_copy(update={"ocr_pages": ocr_pages, "ocr_requests": ocr_requests}),
            chunking=recipe.chunking,
            fingerprint=recipe.fingerprint,
            deployment=deployment,
            created_at=utc_now(),
            metadata=self._metadata,
            sidecar_etag=sidecar_etag,
        )
