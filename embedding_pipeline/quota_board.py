"""The bucket as the board where instances sharing the quota meet (quota_share.py says how they use
it): their announcements, and the capacity estimate of the member refused last.

    {P}_quota/members/{joined-ms}-{instance}   {"at": when it was last written}
    {P}_quota/estimate.json                    the Estimate's fields

Whatever is read back may have been written by another version, half-written, or put there by
anyone with write access to the bucket: an announcement or estimate that cannot be read counts as
none. Storage failures are raised (StorageError): the member decides what a failed round means.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from embedding_pipeline.clients.pacing import Estimate
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout

_SMALL = 4096  # an announcement or an estimate is a few dozen bytes


class QuotaBoard:
    def __init__(self, storage: ObjectStorage, layout: OutputLayout, clock: Callable[[], float]) -> None:
        self._storage = storage
        self._layout = layout
        self._clock = clock

    async def announce(self, name: str) -> float:
        """Write member `name`'s announcement; when it was written."""
        layout = self._layout
        body = json.dumps({"at": self._clock()}).encode()
        await self._storage.put(
            layout.bucket, layout.quota_member(name), body, content_type="application/json"
        )
        return self._clock()

    async def members(self, *, since: float) -> set[str]:
        """The names of the members whose announcements were written at or after `since`."""
        layout, found = self._layout, set()
        async for info in self._storage.list_objects(layout.bucket, layout.quota_members):
            if _modified_at(info.last_modified) >= since:
                found.add(info.key.rpartition("/")[2])
        return found

    async def not_looked_since(self, names: set[str], moment: float) -> set[str]:
        """Those of `names` whose announcements were last written before `moment` (an announcement
        is written just before its round's list); gone ones are left out, unreadable ones kept."""
        layout, still = self._layout, set()
        for name in names:
            raw = await self._storage.get(layout.bucket, layout.quota_member(name), max_bytes=_SMALL)
            if raw is not None and _looked_at(raw) < moment:
                still.add(name)
        return still

    async def forget(self, name: str) -> None:
        await self._storage.delete(self._layout.bucket, self._layout.quota_member(name))

    async def estimate(self) -> tuple[Estimate, ...]:
        """The estimate the member refused last published, or none."""
        layout = self._layout
        raw = await self._storage.get(layout.bucket, layout.quota_estimate, max_bytes=_SMALL)
        return () if raw is None else _estimate(raw)

    async def publish(self, estimate: Estimate) -> None:
        layout = self._layout
        body = json.dumps(asdict(estimate)).encode()
        await self._storage.put(layout.bucket, layout.quota_estimate, body, content_type="application/json")


def joined_at(name: str) -> float:
    """When a member joined, from its name; 0 (long ago) for a name of another form."""
    since, _, _ = name.partition("-")
    return int(since) / 1000 if since.isdigit() else 0.0


def _looked_at(raw: bytes) -> float:
    try:
        return float(json.loads(raw)["at"])
    except (ValueError, TypeError, KeyError):
        return 0.0


def _modified_at(last_modified: str | None) -> float:
    if not last_modified:
        return 0.0
    try:
        return datetime.fromisoformat(last_modified).timestamp()
    except ValueError:
        return 0.0


def _estimate(raw: bytes) -> tuple[Estimate, ...]:
    """The published estimate, or none if it cannot be read (a half-written or foreign object)."""
    try:
        fields = json.loads(raw)
        estimate = Estimate(**{name: float(fields[name]) for name in Estimate.__dataclass_fields__})
    except (ValueError, TypeError, KeyError):
        return ()
    return (estimate,) if estimate.level > 0 and estimate.ceiling > 0 else ()
