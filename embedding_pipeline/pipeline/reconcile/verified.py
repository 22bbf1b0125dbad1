"""What a page of a sweep verified current, kept for the next sweep, so that a steady tick reads no
manifest: it lists the page, and judges each document from the listing alone.

    {P}_sweeps/{prefix_id}/verified/{digest of the page's start}.json
        {"fingerprint": ..., "documents": {document: [source ETag, manifest ETag, records ETag,
                                                      source size, tokens]}}

A document is current without its manifest read when the listing shows the three ETags its entry
holds and the settings' fingerprint is the summary's: an ETag names an object's content, so the
manifest standing is the very one that was read and found to vouch for that source and those
records with these settings. A document with a metadata sidecar has `{source ETag}+{sidecar ETag}`
as its source's: an entry made before the sidecar came, or with another version of it, does not
match. Anything that could make the document stale changes one of them: the source (its ETag), its
sidecar, the manifest (rewritten, by hand or by a run), the records (rewritten, deleted:
no ETag), the settings (the fingerprint); a parked error is judged before manifests are. Sizes and
tokens stay for the dry run's calibration, which would otherwise have learnt them from manifests.

Pages keep their ranges from tick to tick (inventory.ends_page), so each finds its summary by its
start. Every page rewrites its summary as it walks; when the sweep ends, summaries it did not
write (of page starts that are gone) are deleted. A summary that cannot be read (another version,
half written, foreign) is ignored: the page reads its manifests, as without one.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import BaseModel, Field, ValidationError

from embedding_pipeline import foreign
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.store import SMALL_OUTPUT_MAX_BYTES

log = get_logger()

_MAX_BYTES = 4 * SMALL_OUTPUT_MAX_BYTES  # two pages of 1,000 documents with long keys fit well
Count = Annotated[int, Field(ge=0)]
_MARGIN_S = 2.0
Entry = tuple[str, str, str, Count, Count]  # source ETag, manifest ETag, records ETag, size, tokens


class Verified(BaseModel):
    fingerprint: str
    documents: dict[str, Entry] = {}


def folder_of(layout: OutputLayout, prefix_id: str) -> str:
    return f"{layout.sweeps}{prefix_id}/verified/"


def _key(layout: OutputLayout, prefix_id: str, after: str | None) -> str:
    start = "" if after is None else after
    digest = hashlib.sha256(start.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{folder_of(layout, prefix_id)}{digest}.json"


async def read_verified(
    storage: ObjectStorage, layout: OutputLayout, prefix_id: str, after: str | None
) -> Verified | None:
    key = _key(layout, prefix_id, after)
    try:
        data = await storage.get(layout.bucket, key, max_bytes=_MAX_BYTES)
    except StorageError as exc:
        log.warning("verified_page_unreadable", key=key, reason=str(exc))
        return None
    if data is None:
        return None
    try:
        return Verified.model_validate_json(data)
    except ValidationError:
        foreign.ignored(key, "not a page's summary")
        return None


async def write_verified(
    storage: ObjectStorage, layout: OutputLayout, prefix_id: str, after: str | None, verified: Verified
) -> None:
    """Kept for the next sweep; a failure costs it the manifests' reads, nothing else."""
    key = _key(layout, prefix_id, after)
    try:
        await storage.put(
            layout.bucket, key, verified.model_dump_json().encode(), content_type="application/json"
        )
    except StorageError as exc:
        log.warning("verified_page_not_written", key=key, reason=str(exc))


async def discard_older(storage: ObjectStorage, layout: OutputLayout, prefix_id: str, before: float) -> int:
    """Delete the summaries written before `before` (the server's time the sweep started): those
    of page starts no page had this sweep. How many went."""
    folder, stale = folder_of(layout, prefix_id), []
    async for info in storage.list_objects(layout.bucket, folder):
        written = _server_time(info.last_modified)
        # Listings give whole seconds: a margin keeps this sweep's own summaries.
        if written is not None and written < before - _MARGIN_S:
            stale.append(info.key)
    for key in stale:
        await storage.delete(layout.bucket, key)
    return len(stale)


def _server_time(last_modified: str | None) -> float | None:
    from datetime import datetime  # noqa: PLC0415 - only a sweep's end needs it

    if not last_modified:
        return None
    try:
        return datetime.fromisoformat(last_modified).timestamp()
    except ValueError:
        return None
