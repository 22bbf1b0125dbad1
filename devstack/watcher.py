"""Object Storage trigger events, locally: list the source prefix, diff, deliver the changes.

Yandex's trigger fires ObjectCreate for a new or overwritten object and ObjectDelete for a removed
one; the watcher builds exactly those events (devstack/events.py), one message per object. Also the
storage chores of the local stack's start: the bucket, the bundled samples.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from devstack.events import StorageAction, storage_event
from devstack.s3server import S3Access
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage

Deliver = Callable[[dict[str, Any]], object]


async def _with_storage(s3: S3Access, work: Callable[[ObjectStorage], Any]) -> Any:
    async with httpx.AsyncClient(timeout=30) as http:
        return await work(
            ObjectStorage(http, s3.endpoint, sigv4_auth(s3.access_key, s3.secret_key, s3.region))
        )


def run_with_storage(s3: S3Access, work: Callable[[ObjectStorage], Any]) -> Any:
    """Run one storage job from synchronous code (the handler owns its own event loop)."""
    return asyncio.run(_with_storage(s3, work))


def ensure_bucket(s3: S3Access, bucket: str, timeout_s: float = 30.0) -> None:
    """Create the bucket, retrying until the server takes a signed write (readiness, not an open port)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            run_with_storage(s3, lambda storage: storage.create_bucket(bucket))
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        else:
            return


def upload_samples(s3: S3Access, bucket: str, prefix: str, folder: Path) -> int:
    """Upload the bundled samples unless the source prefix already holds something (a second start)."""

    samples = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}

    async def work(storage: ObjectStorage) -> int:
        async for _ in storage.list_objects(bucket, prefix, page_size=1):
            return 0
        for name, data in samples.items():
            await storage.put(bucket, prefix + name, data)
        return len(samples)

    uploaded: int = run_with_storage(s3, work)
    return uploaded


class BucketWatcher:
    """Notices objects created, overwritten or deleted under a prefix, and hands each change to
    `deliver` as the Object Storage trigger's event (one message per object)."""

    def __init__(self, s3: S3Access, bucket: str, prefix: str, deliver: Deliver) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._deliver = deliver
        self._seen: dict[str, str] = {}

    def snapshot(self) -> dict[str, str]:
        async def work(storage: ObjectStorage) -> dict[str, str]:
            return {info.key: info.etag async for info in storage.list_objects(self._bucket, self._prefix)}

        listing: dict[str, str] = run_with_storage(self._s3, work)
        return listing

    def start_from_now(self) -> None:
        """Take what is there as seen: like a new trigger, fire only for changes from now on."""
        self._seen = self.snapshot()

    def poll(self) -> list[tuple[StorageAction, str]]:
        """Deliver one event per created, overwritten or deleted object; return what was delivered."""
        current = self.snapshot()
        changes: list[tuple[StorageAction, str]] = [
            ("ObjectCreate", key) for key, etag in sorted(current.items()) if self._seen.get(key) != etag
        ]
        changes += [("ObjectDelete", key) for key in sorted(set(self._seen) - set(current))]
        for action, key in changes:
            self._deliver(storage_event(action, self._bucket, key))
        self._seen = current
        return changes
