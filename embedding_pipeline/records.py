"""The output contract: where outputs live and what they hold.

For a source `s3://B/K` the pipeline writes, in the output bucket:
    {OUTPUT_PREFIX}{K}.jsonl                   one record per chunk (written first)
    {OUTPUT_PREFIX}{K}.manifest.json           written last: its presence means the records are complete
    {OUTPUT_PREFIX}_checkpoints/{K}/NNNNN.jsonl vectors of an unfinished run, deleted when it completes
    {OUTPUT_PREFIX}_errors/{K}.json            why the source could not be processed
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Container
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from embedding_pipeline import __version__
from embedding_pipeline.errors import UnsafeKey

if TYPE_CHECKING:
    from embedding_pipeline.documents import Chunk, ChunkingSettings

MANIFEST_VERSION = 1
ERRORS_DIR = "_errors/"
CHECKPOINTS_DIR = "_checkpoints/"
INLINE_DIR = "_inline/"  # output keys of inline records (queue or HTTP): {OUTPUT_PREFIX}_inline/{id}.jsonl
REPORTS_DIR = "_reports/"


def records_key(output_prefix: str, key: str) -> str:
    return f"{output_prefix}{key}.jsonl"


def manifest_key(output_prefix: str, key: str) -> str:
    return f"{output_prefix}{key}.manifest.json"


def error_key(output_prefix: str, key: str) -> str:
    return f"{output_prefix}{ERRORS_DIR}{key}.json"


def checkpoint_prefix(output_prefix: str, key: str) -> str:
    return f"{output_prefix}{CHECKPOINTS_DIR}{key}/"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Output(BaseModel):
    # Schemas are built on first use, not at import: each costs cold-start time.
    model_config = ConfigDict(defer_build=True)


class SourceRef(_Output):
    bucket: str
    key: str
    etag: str | None = None
    size: int | None = None


class ManifestUsage(_Output):
    tokens: int  # tokens of every chunk in the records, reused ones included
    billed_tokens: int  # tokens the API billed in the run that completed the records
    api_requests: int
    reused_chunks: int


class Manifest(_Output):
    manifest_version: int = MANIFEST_VERSION
    pipeline_version: str = __version__
    source: SourceRef
    records: SourceRef
    model: str
    dimensions: int
    chunks: int
    format: str
    usage: ManifestUsage
    chunking: dict[str, Any]
    fingerprint: str
    created_at: str
    metadata: dict[str, Any] = {}


class ErrorRecord(_Output):
    source: SourceRef
    error: str
    reason: str
    failed_at: str
    pipeline_version: str = __version__
    fingerprint: str | None = None


def settings_fingerprint(*, model: str, dimensions: int, chunking: ChunkingSettings, text_field: str) -> str:
    """What, besides the source's bytes, decides the records: a manifest with another value is stale."""
    material = json.dumps(
        {
            "model": model,
            "dimensions": dimensions,
            "chunking": chunking_summary(chunking),
            "text_field": text_field,
            "manifest_version": MANIFEST_VERSION,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def chunking_summary(settings: ChunkingSettings) -> dict[str, Any]:
    return {
        "max_tokens": settings.max_tokens,
        "overlap_tokens": settings.overlap_tokens,
        "chars_per_token": settings.chars_per_token,
    }


def record_line(
    *,
    key: str,
    number: int,
    chunk: Chunk,
    text_hash: str,
    vector: array[float],
    tokens: int,
    model: str,
    source: SourceRef,
) -> bytes:
    record = {
        "id": f"{key}#{number}",
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
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


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


def parse_manifest(data: bytes | None) -> Manifest | None:
    if not data:
        return None
    try:
        return Manifest.model_validate_json(data)
    except ValidationError:
        return None


MAX_KEY_BYTES = 1024


def validate_source_key(key: str) -> None:
    """Refuse keys the pipeline will not derive output keys (or local paths) from."""
    if not key or len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise UnsafeKey(f"object key is empty or longer than {MAX_KEY_BYTES} bytes")
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise UnsafeKey("object key contains control characters")
    if key.startswith("/") or ".." in key.split("/"):
        raise UnsafeKey("object key is absolute or contains a '..' segment")
