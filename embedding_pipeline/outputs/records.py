"""The records object of one document, written in document order as vectors arrive."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from embedding_pipeline.clients.multipart import ObjectWriter
from embedding_pipeline.outputs.layout import DocumentKeys
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import ManifestUsage, SourceRef
from embedding_pipeline.stages.vectorize import EmbeddedChunk


class RecordsSink:
    """Writes one record per embedded chunk and tallies what the manifest will report.

    Open it with `DocumentOutputs.writing_records`: the object appears only when that block ends.
    """

    def __init__(
        self,
        writer: ObjectWriter,
        keys: DocumentKeys,
        *,
        record_id: str,  # records are "{record_id}#{n}"
        source: SourceRef,  # what the records describe
        model: str,
        metadata: dict[str, Any],  # carried into every record
    ) -> None:
        self._writer = writer
        self._keys = keys
        self._record_id = record_id
        self._source = source
        self._model = model
        self._metadata = metadata
        self.chunks = 0
        self.reused = 0
        self.tokens = 0
        self.billed_tokens = 0

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
            model=self._model,
            source=self._source,
        )
        await self._writer.write(line)
        self.chunks += 1
        self.tokens += item.tokens
        if item.reused:
            self.reused += 1
        else:
            self.billed_tokens += item.tokens

    @property
    def written(self) -> SourceRef:
        """The records object, with its ETag once the upload completed."""
        return SourceRef(bucket=self._keys.bucket, key=self._keys.records, etag=self._writer.etag)

    @property
    def usage(self) -> ManifestUsage:
        return ManifestUsage(
            tokens=self.tokens,
            billed_tokens=self.billed_tokens,
            api_requests=self.chunks - self.reused,
            reused_chunks=self.reused,
        )
