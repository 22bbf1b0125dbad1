"""Instances that embed in bulk find each other in the bucket, to share the folder's quota.

No coordinator of our own and no further service: the bucket the pipeline already writes holds
(outputs/layout.py)
    {P}_quota/members/{instance}   one per instance embedding now, rewritten every REFRESH_S
    {P}_quota/estimate.json        the capacity estimate of the member refused last
A member rewrites its announcement, lists the announcements (those modified within MEMBER_TTL_S
count), and reads the estimate, every REFRESH_S; that is three small requests a second per
instance, a fraction of a kopeck an hour. The pacer (clients/pacing.py) then takes
`capacity / members` of the quota. A member that drops its estimate on a 429 writes it at once, so
the others slow within a second. An instance leaves when its invocation ends (its announcement is
deleted); one that crashed stops counting MEMBER_TTL_S later.

Only bulk work joins: the HTTP API's requests stay outside (they are few, and retried quickly). A
failure to read or write here never fails the work: the instance goes on with what it knew, alone
at worst, and the pacer's 429 handling keeps it within the quota.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime

from embedding_pipeline.clients.pacing import Estimate, Share
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.layout import OutputLayout

log = get_logger()

REFRESH_S = 1.0
NEWCOMER_LOOK_S = 0.25  # a newcomer looks again this soon, for instances that started with it
MEMBER_TTL_S = 5.0  # an announcement older than this is of an instance that is gone


class QuotaShare:
    """This instance's membership, for one invocation: join on the first bulk request, leave at the end."""

    def __init__(
        self,
        storage: ObjectStorage,
        layout: OutputLayout,
        limiter: RateLimiter,
        *,
        instance: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._layout = layout
        self._limiter = limiter
        self._instance = instance
        self._clock = clock
        self._joined = asyncio.Event()
        self._joining: asyncio.Lock = asyncio.Lock()
        self._loop: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()
        self._warned = False

    async def join(self) -> None:
        """Announce this instance and learn the others, once; later calls return at once."""
        if self._joined.is_set():
            return
        async with self._joining:
            if self._joined.is_set():
                return
            self._limiter.on_drop(self._publish)
            members = await self._look()
            self._loop = asyncio.create_task(self._refresh(newcomer=members <= 1))
            self._joined.set()

    async def leave(self) -> None:
        """Stop announcing, and delete the announcement, so the others take our part at once."""
        if self._loop is None:
            return
        self._loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop
        for task in list(self._publishing):
            with contextlib.suppress(Exception):
                await task
        try:
            await self._storage.delete(self._layout.bucket, self._layout.quota_member(self._instance))
        except StorageError as exc:
            self._warn(exc)
        self._limiter.on_drop(None)
        self._limiter.join(Share())

    async def _refresh(self, *, newcomer: bool) -> None:
        delay = NEWCOMER_LOOK_S if newcomer else REFRESH_S
        while True:
            await asyncio.sleep(delay * (0.9 + 0.2 * random.random()))  # noqa: S311 - jitter
            await self._look()
            delay = REFRESH_S

    async def _look(self) -> int:
        """Announce, count the members, read the estimate: one round. The members counted."""
        bucket, layout = self._layout.bucket, self._layout
        try:
            await self._storage.put(
                bucket,
                layout.quota_member(self._instance),
                json.dumps({"at": self._clock()}).encode(),
                content_type="application/json",
            )
            oldest = self._clock() - MEMBER_TTL_S
            members = {self._instance}
            async for info in self._storage.list_objects(bucket, layout.quota_members):
                if _modified_at(info.last_modified) >= oldest:
                    members.add(info.key.rpartition("/")[2])
            raw = await self._storage.get(bucket, layout.quota_estimate, max_bytes=4096)
        except StorageError as exc:
            self._warn(exc)
            return self._limiter.pacer.share.members
        others = () if raw is None else _estimate(raw)
        names = sorted(members)
        self._limiter.join(Share(len(names), others, names.index(self._instance)))
        return len(names)

    def _publish(self, estimate: Estimate) -> None:
        """The pacer dropped its estimate: tell the members, without holding up the request."""
        task = asyncio.get_running_loop().create_task(self._write_estimate(estimate))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _write_estimate(self, estimate: Estimate) -> None:
        try:
            await self._storage.put(
                self._layout.bucket,
                self._layout.quota_estimate,
                json.dumps(asdict(estimate)).encode(),
                content_type="application/json",
            )
        except StorageError as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:  # once per invocation: the work goes on either way
            self._warned = True
            log.warning("quota_share_unavailable", reason=str(exc))


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
