"""The JSON lines of records and checkpoints: written compactly, read back for vectors worth reusing."""

from __future__ import annotations

import json
from array import array
from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedding_pipeline.outputs.models import SourceRef
    from embedding_pipeline.stages.documents import Chunk


def record_line(
    *,
    record_id: str,
    number: int,
    chunk: Chunk,
    text_hash: str,
    vector: array[float],
    tokens: int,
    model: str,
    source: SourceRef,
) -> bytes:
    record = {
        "id": f"{record_id}#{number}",
        "chunk": number,
        "text": chunk.text,
        "embedding": vector.tolist(),
        "model": model,
        "source": {"bucket": source.bucket, "key": source.key, "etag": source.etag},
        "start": chunk.start,
        "end": chunk.end,
        "content_hash": text_hash,
        "tokens": tokens,
        "metadata": chunk.metadata,
    }
    # allow_nan=False: a record strict JSON readers reject is never written (a ValueError parks it).
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def checkpoint_line(*, text_hash: str, vector: array[float], tokens: int, model: str) -> bytes:
    record = {"content_hash": text_hash, "model": model, "tokens": tokens, "embedding": vector.tolist()}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def known_vector(
    line: bytes, *, model: str, wanted: Container[str] | None = None
) -> tuple[str, array[float], int] | None:
    """A reusable (hash, vector, tokens) from a records or checkpoint line, or None.

    Both line kinds carry `content_hash`, `model`, `tokens` and `embedding`; a damaged line is skipped
    rather than trusted. `wanted=None` keeps every hash (pieces of split chunks have hashes nobody
    can predict before the API asks for the split).
    """
    try:
        record = json.loads(line)
        text_hash = record["content_hash"]
        if record["model"] != model or (wanted is not None and text_hash not in wanted):
            return None
        return text_hash, array("d", record["embedding"]), int(record.get("tokens") or 0)
    except (ValueError, KeyError, TypeError):
        return None
