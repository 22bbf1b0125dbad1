"""The bucket as the board where instances sharing the quota meet (quota_share.py says how they use
it): their announcements, and the capacity estimate of the member refused last.

    {P}_quota/members/{joined-ms}-{instance}   {"at": when it was last written}
    {P}_quota/estimate.json                    the Estimate's fields

Whatever is read back may have been written by another version, half-written, or put there by
anyone with write access to the bucket: an announcement or estimate that cannot be read counts as
none. Storage failures are raised (StorageError): the member decides what a failed round means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime

from embedding_pipeline import foreign
from embedding_pipeline.clients.pacing import CEILING_SHARE, FLOOR_SHARE, Estimate
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.outputs.layout import OutputLayout

_SMALL = 4096  # an announcement or an estimate is a few dozen bytes
_MEMBER_NAME = re.compile(r"^\d{13}-[0-9A-Za-z_-]{1,64}$")
FUTURE_SLACK_S = 5.0  # a time written this far ahead of the server's is a clock far off, not news


class QuotaBoard:
    """Times go in and out in the local clock (`clock`); in the bucket they are the server's
    (`offset` turns one into the other: clients/server_clock.py), so a member whose clock is off
    is read right by the others."""

    def __init__(
        self,
        storage: ObjectStorage,
        layout: OutputLayout,
        clock: Callable[[], float],
        *,
        quota: float,
        offset: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self._storage = storage
        self._layout = layout
        self._clock = clock
        self._offset = offset
        self._quota = quota
        self._publishing: set[asyncio.Task[None]] = set()

    def _server_now(self) -> float:
        return self._clock() + self._offset()

    def member_name(self, since: float, instance: str) -> str:
        """A member's name: when it joined (the server's milliseconds), then its instance."""
        return f"{round((since + self._offset()) * 1000):013d}-{instance}"

    def joined_at(self, name: str) -> float:
        """When a member joined, in the local clock; long ago for a name of another form."""
        since, _, _ = name.partition("-")
        return int(since) / 1000 - self._offset() if since.isdigit() else 0.0

    async def announce(self, name: str) -> float:
        """Write member `name`'s announcement; when it was written (local clock)."""
        layout = self._layout
        body = json.dumps({"at": self._server_now()}).encode()
        await self._storage.put(
            layout.bucket, layout.quota_member(name), body, content_type="application/json"
        )
        return self._clock()

    async def members(self, *, within_s: float) -> set[str]:
        """The names of the members whose announcements the server shows written within the last
        `within_s` seconds (objects of another name are not members)."""
        layout, found = self._layout, set()
        oldest = self._server_now() - within_s
        async for info in self._storage.list_objects(layout.bucket, layout.quota_members):
            name = info.key.rpartition("/")[2]
            if not _MEMBER_NAME.match(name):
                foreign.ignored(info.key, "not a member's announcement")
            elif _modified_at(info.last_modified) >= oldest:
                found.add(name)
        return found

    async def not_looked_since(self, names: set[str], moment: float) -> set[str]:
        """Those of `names` whose announcements were last written before `moment` (local clock; an
        announcement is written just before its round's list); gone ones left out, unreadable kept."""
        layout, still = self._layout, set()
        for name in names:
            raw = await self._storage.get(layout.bucket, layout.quota_member(name), max_bytes=_SMALL)
            if raw is not None and _looked_at(raw) < moment + self._offset():
                still.add(name)
        return still

    async def forget(self, name: str) -> None:
        await self._storage.delete(self._layout.bucket, self._layout.quota_member(name))

    async def estimate(self) -> tuple[Estimate, ...]:
        """The estimate the member refused last published, in the local clock; none if there is none
        or it is out of bounds (foreign.py)."""
        layout = self._layout
        raw = await self._storage.get(layout.bucket, layout.quota_estimate, max_bytes=_SMALL)
        if raw is None:
            return ()
        found, problem = _estimate(raw), None
        if found is None:
            problem = "not an estimate"
        else:
            problem = _out_of_bounds(found, self._quota, self._server_now())
        if problem is not None or found is None:
            foreign.ignored(layout.quota_estimate, problem or "not an estimate")
            return ()
        return (_shifted(found, -self._offset()),)

    async def publish(self, estimate: Estimate) -> None:
        layout = self._layout
        body = json.dumps(asdict(_shifted(estimate, self._offset()))).encode()
        await self._storage.put(layout.bucket, layout.quota_estimate, body, content_type="application/json")

    def publish_soon(self, estimate: Estimate, *, on_failure: Callable[[Exception], None]) -> None:
        """Publish without holding up the request that learnt it."""

        async def publish() -> None:
            try:
                await self.publish(estimate)
            except StorageError as exc:
                on_failure(exc)

        task = asyncio.get_running_loop().create_task(publish())
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def published(self) -> None:
        """Every estimate handed to `publish_soon` is written (or failed)."""
        for task in list(self._publishing):
            with contextlib.suppress(Exception):
                await task


def _shifted(estimate: Estimate, seconds: float) -> Estimate:
    return replace(
        estimate, dropped_at=estimate.dropped_at + seconds, refused_at=estimate.refused_at + seconds
    )


def _out_of_bounds(estimate: Estimate, quota: float, server_now: float) -> str | None:
    """Why an estimate cannot be one a member of this quota wrote, or None: its rates within what a
    pacer can reach (FLOOR_SHARE to CEILING_SHARE of the quota), its times not in the future."""
    rates, times = (
        (estimate.level, estimate.low, estimate.ceiling),
        (estimate.dropped_at, estimate.refused_at),
    )
    if not foreign.finite(*rates, *times):
        return "a number that is not finite"
    if not all(quota * FLOOR_SHARE * 0.99 <= rate <= quota * CEILING_SHARE * 1.01 for rate in rates):
        return f"a rate outside what a quota of {quota} allows"
    if max(times) > server_now + FUTURE_SLACK_S:
        return "a time in the future"
    return None


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


def _estimate(raw: bytes) -> Estimate | None:
    """The published estimate, or None if it cannot be read (a half-written or foreign object)."""
    try:
        fields = json.loads(raw)
        return Estimate(**{name: float(fields[name]) for name in Estimate.__dataclass_fields__})
    except (ValueError, TypeError, KeyError, OverflowError):
        return None
