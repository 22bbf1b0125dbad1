"""What a page's documents need: judged from the page's inventory and the small outputs it reads.

missing       a source with no manifest
stale         a manifest that no longer vouches for its source's ETag, its records object's ETag,
              its metadata sidecar's ETag or the settings (model, dimensions, chunking): a model
              change migrates the bucket; `metadata_only` when the sidecar alone changed (the
              records are rewritten without a text paid for)
parked        a source parked for this very version and these settings: left alone
parked_retry  a parked source whose bytes or settings changed since, or that was parked for an
              unexpected error (which may not be the document's): tried again
orphaned      outputs whose source is gone (only documents of the page's range, never others)
refused       a source whose key cannot have outputs: recorded once under `_errors/_refused/`

Manifests and error records are read side by side, a few at a time; each manifest read also teaches
the dry run's estimate what a byte of that kind of document costs (estimate.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from embedding_pipeline.errors import ConfigurationError, UnexpectedFailure
from embedding_pipeline.outputs.models import Manifest
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.reconcile.estimate import Calibration
from embedding_pipeline.pipeline.reconcile.inventory import PageInventory
from embedding_pipeline.pipeline.reconcile.verified import Entry, Verified

_READS_AT_ONCE = 16
T = TypeVar("T")


@dataclass(slots=True)
class Findings:
    missing: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    metadata_only: set[str] = field(default_factory=set)  # stale for their sidecar alone: nothing to pay
    parked: set[str] = field(default_factory=set)
    parked_retry: set[str] = field(default_factory=set)
    orphaned: set[str] = field(default_factory=set)
    current_documents: set[str] = field(default_factory=set)
    verified: dict[str, Entry] = field(default_factory=dict)  # the current ones, for the next sweep

    @property
    def current(self) -> int:
        return len(self.current_documents)

    @property
    def to_embed(self) -> set[str]:
        return self.missing | self.stale | self.parked_retry

    def counts(self) -> dict[str, int]:
        return {
            "missing": len(self.missing),
            "stale": len(self.stale),
            "orphaned": len(self.orphaned),
            "parked_retry": len(self.parked_retry),
            "parked": len(self.parked),
        }


async def classify(
    outputs: BucketOutputs,
    inventory: PageInventory,
    *,
    fingerprint: str,
    deployment: str,
    calibration: Calibration,
    verified: Verified | None = None,
    retry_errors: frozenset[str] = frozenset(),
) -> Findings:
    """What each document of the page needs; a document `verified` current by the last sweep, with
    the same ETags listed now, without its manifest read (verified.py). ConfigurationError (the run
    stops, nothing touched) when another deployment's outputs, made with other settings, share
    this output area. A document parked with one of `retry_errors` is tried again (a setting that
    parked it has changed)."""
    found = Findings()
    found.orphaned = {
        document
        for document in inventory.documents_with_outputs()
        if document not in inventory.sources and document not in inventory.refused
    }
    parked = [key for key in inventory.sources if key in inventory.errors]
    judged = [key for key in inventory.sources if key not in inventory.errors and key in inventory.manifests]
    found.missing = {
        key for key in inventory.sources if key not in inventory.errors and key not in inventory.manifests
    }
    records = await _side_by_side([outputs.document(key).error_record for key in parked])
    for key, record in zip(parked, records, strict=True):
        etag = inventory.sources[key].etag
        # Parked for an unexpected error: maybe not the document's fault at all (a bug, something
        # foreign in the bucket), so each sweep tries it again; it pays only for what is missing.
        same = (
            record is not None
            and record.source.etag == etag
            and record.sidecar_etag == _sidecar_etag(inventory, key)
            and record.fingerprint == fingerprint
            and record.error != UnexpectedFailure.code
            and record.error not in retry_errors
        )
        (found.parked if same else found.parked_retry).add(key)
    known = verified.documents if verified is not None and verified.fingerprint == fingerprint else {}
    to_read = []
    for key in judged:
        entry = known.get(key)
        if entry is not None and entry[:3] == _listed(inventory, key):
            found.current_documents.add(key)
            found.verified[key] = entry
            if entry[3]:
                calibration.learn_manifest(key, entry[3], entry[4])
        else:
            to_read.append(key)
    manifests = await _side_by_side([outputs.document(key).manifest for key in to_read])
    for key, manifest in zip(to_read, manifests, strict=True):
        records_info = inventory.records.get(key)
        current = manifest is not None and manifest.vouches_for(
            source_etag=inventory.sources[key].etag,
            fingerprint=fingerprint,
            records_etag=None if records_info is None else records_info.etag,
        )
        sidecar_changed = manifest is not None and manifest.sidecar_etag != _sidecar_etag(inventory, key)
        if current and sidecar_changed:
            found.stale.add(key)
            found.metadata_only.add(key)
        elif current and manifest is not None:
            found.current_documents.add(key)
            size, tokens = manifest.source.size or 0, manifest.usage.tokens
            found.verified[key] = (*_listed(inventory, key), size, tokens)
        elif manifest is not None and manifest.foreign_to(deployment, fingerprint):
            raise ConfigurationError(
                f"{outputs.document(key).keys.manifest} was written by deployment {manifest.deployment!r} "
                "with other settings: give each deployment an OUTPUT_PREFIX (or OUTPUT_BUCKET) of its own"
            )
        else:
            found.stale.add(key)
        if manifest is not None:
            _learn(calibration, manifest)
    return found


def _sidecar_etag(inventory: PageInventory, key: str) -> str | None:
    sidecar = inventory.sidecars.get(key)
    return None if sidecar is None else sidecar.etag


def _listed(inventory: PageInventory, key: str) -> tuple[str, str, str]:
    """The source's, the manifest's and the records' ETags as the page listed them ("" if absent);
    a document with a metadata sidecar has the sidecar's beside its source's, so that a summary
    entry made without it, or with another version, does not match."""
    records = inventory.records.get(key)
    manifest = inventory.manifests.get(key)
    sidecar = _sidecar_etag(inventory, key)
    source = inventory.sources[key].etag
    return (
        source if sidecar is None else f"{source}+{sidecar}",
        "" if manifest is None else manifest.etag,
        "" if records is None else records.etag,
    )


def _learn(calibration: Calibration, manifest: Manifest) -> None:
    if manifest.source.size:
        usage = manifest.usage
        calibration.learn_manifest(manifest.source.key, manifest.source.size, usage.tokens, usage.ocr_pages)


async def _side_by_side(reads: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Each read, at most _READS_AT_ONCE at a time, results in order."""
    gate = asyncio.Semaphore(_READS_AT_ONCE)

    async def one(read: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await read()

    return list(await asyncio.gather(*(one(read) for read in reads)))
