"""One run at a time per document: the claim a run takes in the bucket before it pays for anything.

    {P}_claims/{K}.json    {"holder": run, "by": invocation, "version": source ETag, "until": time}

A run takes the claim with `If-None-Match: *` (none stood), or with `If-Match` the ETag of one that
lapsed or that no honest writer could have written (foreign.py), so two runs that start together
cannot both hold it. A run that finds a live claim of another run pays nothing: its delivery is
deferred (pipeline/claiming.py). The holder renews the claim while it works (every RENEW_S, If-Match
its own last write), and gives it up when the run ends, however it ends; a crashed run's claim
lapses HOLD_S after its last renewal, and the next delivery resumes from the checkpoint. Times are
the server's (clients/server_clock.py): a clock far off can neither hold a document nor take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel, ValidationError

from embedding_pipeline import foreign
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import StorageError
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.document_keys import DocumentKeys

log = get_logger()

HOLD_S = 20.0  # a claim not renewed for this long has lapsed: its run is gone
RENEW_S = 5.0
SKEW_S = 5.0  # the server's time as two instances read it may differ by this much
_SMALL = 4096


class ClaimRecord(BaseModel):
    holder: str  # the run
    by: str  # its invocation, for people reading it
    version: str | None  # the source's version it started from
    until: float  # the server's time at which it lapses unless renewed


async def held(storage: ObjectStorage, keys: DocumentKeys) -> bool:
    """Whether a live claim stands on the document (a run works on it now)."""
    found = await storage.get(keys.bucket, keys.claim, max_bytes=_SMALL)
    if found is None:
        return False
    try:
        record = ClaimRecord.model_validate_json(found)
    except ValidationError:
        return False
    now = storage.server_clock.now()
    return foreign.finite(record.until) and now < record.until <= now + HOLD_S + SKEW_S


class DocumentClaim:
    def __init__(self, storage: ObjectStorage, keys: DocumentKeys, *, by: str, version: str | None) -> None:
        self._storage = storage
        self._keys = keys
        self._record = ClaimRecord(holder=uuid.uuid4().hex[:12], by=by, version=version, until=0.0)
        self._etag: str | None = None  # of our own last write
        self._lock = asyncio.Lock()
        self.lost = False  # another run took it over (ours lapsed): stop before writing anything

    async def take(self) -> ClaimRecord | None:
        """Take the claim; None when taken, else the live claim of another run (left alone)."""
        keys = self._keys
        if await self._write(if_none_match=True):
            return None
        found = await self._storage.get_with_info(keys.bucket, keys.claim, max_bytes=_SMALL)
        if found is None:  # given up since: take it afresh
            return None if await self._write(if_none_match=True) else self._unknown()
        data, info = found
        other = self._live(data)
        if other is not None and other.holder == self._record.holder:
            self._etag = info.etag  # our own write, whose answer a retry lost
            return None
        if other is not None:
            return other
        return None if await self._write(if_match=info.etag) else self._unknown()

    def _live(self, data: bytes) -> ClaimRecord | None:
        """The claim read, if it is a live one an honest writer wrote; None if it may be taken."""
        now = self._storage.server_clock.now()
        try:
            record = ClaimRecord.model_validate_json(data)
        except ValidationError:
            foreign.ignored(self._keys.claim, "not a claim")
            return None
        if not foreign.finite(record.until) or record.until > now + HOLD_S + SKEW_S:
            foreign.ignored(self._keys.claim, "a claim that lasts further ahead than a claim does")
            return None
        return record if record.until > now else None

    def _unknown(self) -> ClaimRecord:
        """Another run took it between our two looks: live, for all we know."""
        return ClaimRecord(holder="?", by="?", version=None, until=self._storage.server_clock.now() + HOLD_S)

    async def _write(self, *, if_none_match: bool = False, if_match: str | None = None) -> bool:
        self._record.until = self._storage.server_clock.now() + HOLD_S
        etag = await self._storage.put(
            self._keys.bucket,
            self._keys.claim,
            self._record.model_dump_json().encode(),
            content_type="application/json",
            if_none_match=if_none_match,
            if_match=if_match,
        )
        if etag is not None:
            self._etag = etag
        return etag is not None

    @asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Renew the claim while the block runs; give it up when it ends, however it ends."""
        task = asyncio.create_task(self._renew())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._give_up()

    async def _renew(self) -> None:
        while not self.lost:
            await asyncio.sleep(RENEW_S)
            async with self._lock:
                try:
                    if not await self._write(if_match=self._etag):
                        self.lost = True
                        log.warning("claim_lost", document=self._keys.document)
                except StorageError as exc:
                    log.warning("claim_not_renewed", document=self._keys.document, reason=str(exc))

    async def _give_up(self) -> None:
        """Delete the claim if it is still ours (another run may have taken a lapsed one over)."""
        if self.lost:
            return
        async with self._lock:
            keys = self._keys
            try:
                # Surely ours while it has not lapsed (nobody takes a live claim): delete it at once;
                # near its end, only if it is still the object this run last wrote.
                if self._record.until - self._storage.server_clock.now() < SKEW_S:
                    found = await self._storage.head(keys.bucket, keys.claim)
                    if found is None or found.etag != self._etag:
                        return
                await self._storage.delete(keys.bucket, keys.claim)
            except StorageError as exc:
                # It lapses by itself within HOLD_S; the next run takes it over then.
                log.warning("claim_not_given_up", document=keys.document, reason=str(exc))
