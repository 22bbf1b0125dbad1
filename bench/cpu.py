"""CPU outside the network: parse, chunk and serialise 100,000 chunks (no API, no storage)."""

from __future__ import annotations

import json
import time
from array import array

from bench.common import paragraphs
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import SourceRef
from embedding_pipeline.stages.documents import ChunkingSettings, chunk_document, parse_document
from embedding_pipeline.stages.vectorize import content_hash

CHUNKS = 100_000


def main() -> dict[str, object]:
    text = "\n\n".join(paragraphs(CHUNKS)).encode()
    vector = array("d", [0.0123456789] * 256)
    source = SourceRef(bucket="b", key="incoming/big.md", etag="e")
    started = time.perf_counter()
    document = parse_document(text, "incoming/big.md")
    parsed = time.perf_counter()
    chunks = chunk_document(document, ChunkingSettings(max_tokens=300))
    chunked = time.perf_counter()
    size = 0
    for number, chunk in enumerate(chunks):
        size += len(
            record_line(
                record_id=source.key,
                number=number,
                chunk=chunk,
                text_hash=content_hash(chunk.text),
                vector=vector,
                tokens=100,
                model="m",
                source=source,
            )
        )
    done = time.perf_counter()
    return {
        "input_mb": round(len(text) / 2**20, 1),
        "chunks": len(chunks),
        "parse_s": round(parsed - started, 2),
        "chunk_s": round(chunked - parsed, 2),
        "serialise_s": round(done - chunked, 2),
        "chunks_per_s": round(len(chunks) / (done - started)),
        "output_mb": round(size / 2**20, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
