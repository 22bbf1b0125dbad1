"""Deliver Object Storage trigger events locally: list the source prefix, diff, call the handler.

Yandex's trigger fires ObjectCreate for a new or overwritten object and ObjectDelete for a removed
one; the watcher sends exactly those event shapes (tests/events/ has the samples), one message per
object, to `index.handler`, with a context like the runtime's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from devstack.context import LocalContext
from devstack.events import StorageAction, storage_event
from devstack.s3server import S3Access
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage

Handler = Callable[[dict[str, Any], Any], Any]


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
    def __init__(self, s3: S3Access, bucket: str, prefix: str, handler: Handler) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix
        self._handler = handler
        self._seen: dict[str, str] = {}

    def snapshot(self) -> dict[str, str]:
        async def work(storage: ObjectStorage) -> dict[str, str]:
            return {info.key: info.etag async for info in storage.list_objects(self._bucket, self._prefix)}

        listing: dict[str, str] = run_with_storage(self._s3, work)
        return listing

    def poll(self) -> list[dict[str, Any]]:
        """Deliver one event per created, overwritten or deleted object; return the handler's replies."""
        current = self.snapshot()
        replies = []
        for key, etag in sorted(current.items()):
            if self._seen.get(key) != etag:
                replies.append(self._deliver("ObjectCreate", key))
        for key in sorted(set(self._seen) - set(current)):
            replies.append(self._deliver("ObjectDelete", key))
        self._seen = current
        return replies

    def _deliver(self, action: StorageAction, key: str) -> dict[str, Any]:
        event = storage_event(action, self._bucket, key)
        try:
            reply: dict[str, Any] = self._handler(event, LocalContext())
        except Exception as exc:  # the cloud trigger would retry; locally the next change retries
            print(json.dumps({"msg": "local_delivery_failed", "key": key, "error": repr(exc)}), flush=True)
            return {"error": repr(exc)}
        return reply
