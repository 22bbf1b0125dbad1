"""Documents: bytes → text (decoding, formats) → chunks with exact offsets."""

from embedding_pipeline.stages.documents.chunking import (
    ChunkingSettings,
    chunk_document,
    split_chunk,
)
from embedding_pipeline.stages.documents.decoding import decode_text
from embedding_pipeline.stages.documents.formats import parse_document
from embedding_pipeline.stages.documents.model import Chunk, Limits, Metadata, ParsedDocument, Section
from embedding_pipeline.stages.documents.previous_chunks import PreviousChunks

__all__ = [
    "Chunk",
    "ChunkingSettings",
    "Limits",
    "Metadata",
    "ParsedDocument",
    "PreviousChunks",
    "Section",
    "chunk_document",
    "decode_text",
    "parse_document",
    "split_chunk",
]
