"""What the JSON outputs hold: the manifest, error records, and the fingerprint that makes outputs stale."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from embedding_pipeline import __version__

if TYPE_CHECKING:
    from embedding_pipeline.settings import Settings

MANIFEST_VERSION = 1

Count = Annotated[int, Field(ge=0)]


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
    """What this version of the document cost, across every invocation that worked on it."""

    tokens: Count  # tokens of every chunk in the records, reused ones included
    billed_tokens: Count  # tokens paid for this version: each distinct new text once
    api_requests: Count  # billed embedding requests: one per distinct new text
    reused_chunks: Count  # chunks not paid for: previous records, repeated texts, another document's call
    ocr_pages: Count = 0  # pages Vision OCR was sent for this version (each billed once: pipeline/ocr.py)
    ocr_requests: Count = 0  # Vision OCR requests that counted against its quota


class Manifest(_Output):
    manifest_version: int = MANIFEST_VERSION
    pipeline_version: str = __version__
    source: SourceRef
    records: SourceRef
    model: str
    dimensions: Annotated[int, Field(gt=0)]
    chunks: Count
    format: str
    usage: ManifestUsage
    chunking: dict[str, Any]
    fingerprint: str
    created_at: str
    metadata: dict[str, Any] = {}  # a document's (x-amz-meta-*, its sidecar), an inline text's
    sidecar_etag: str | None = None  # the metadata sidecar the records were made with (None: there was none)
    deployment: str | None = None  # which deployment wrote it (None: a version before this field)

    def foreign_to(self, deployment: str, fingerprint: str) -> bool:
        """Whether another deployment wrote this with other settings: the two would re-embed each
        other's documents without end, so neither may (bucket_policy's rule; README, data safety)."""
        return self.deployment not in (None, deployment) and self.fingerprint != fingerprint

    def vouches_for(self, *, source_etag: str | None, fingerprint: str, records_etag: str | None) -> bool:
        """Whether these records are current: made from this version of the source with these
        settings, and still the records object that stands (`records_etag` None: it is gone). A
        manifest from before records ETags were named trusts any records object."""
        return (
            self.source.etag == source_etag
            and self.fingerprint == fingerprint
            and self.names_records(records_etag)
        )

    def names_records(self, records_etag: str | None) -> bool:
        """Whether the records object that stands (None: none does) is the one this manifest vouches
        for; a manifest from before records ETags were named trusts any."""
        return records_etag is not None and self.records.etag in (None, records_etag)


class ErrorRecord(_Output):
    """Why a document was parked: `{OUTPUT_PREFIX}_errors/{K}.json`."""

    source: SourceRef
    error: str
    reason: str
    failed_at: str
    pipeline_version: str = __version__
    fingerprint: str | None = None
    sidecar_etag: str | None = None  # the metadata sidecar beside the version parked (None: none)


class IndexPending(_Output):
    """The vector index could not take these records: `{OUTPUT_PREFIX}_index/{K}.json`."""

    records_etag: str | None
    reason: str
    marked_at: str


class MessageErrorRecord(_Output):
    """A queue message that can never be processed, kept with its raw body so it can be sent again."""

    error: str = "poisoned_message"
    reason: str
    message_id: str
    body: str
    failed_at: str


def chunking_summary(settings: Settings) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "max_tokens": settings.chunk_max_tokens,
        "overlap_tokens": settings.chunk_overlap_tokens,
        "chars_per_token": settings.chars_per_token,
    }
    if settings.pack_records:  # only when on: manifests written without it stay current
        summary["pack_records"] = True
    return summary


@dataclass(frozen=True, slots=True)
class Recipe:
    """What, besides the source's bytes, decides a document's records: the model, and the settings
    that shape its chunks and vectors, named by `fingerprint` in the manifest (another value: stale)."""

    model: str
    dimensions: int
    chunking: dict[str, Any]
    fingerprint: str


def recipe(settings: Settings, model: str) -> Recipe:
    """The recipe of records made with `model` under these settings."""
    return Recipe(
        model, settings.embeddings_dimensions, chunking_summary(settings), _fingerprint(settings, model)
    )


def _fingerprint(settings: Settings, model: str) -> str:
    material = json.dumps(
        {
            "model": model,
            "dimensions": settings.embeddings_dimensions,
            "chunking": chunking_summary(settings),
            "text_field": settings.json_text_field,
            "manifest_version": MANIFEST_VERSION,
            # Only when forced: a sniffed CSV's fingerprint stays what it was before the setting.
            **({"csv_delimiter": settings.csv_delimiter} if settings.csv_delimiter else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]
