"""Functional: the local trigger (devstack) delivers the events Yandex's Object Storage trigger would."""

from __future__ import annotations

import asyncio
from typing import Any

from devstack.watcher import BucketWatcher
from embedding_pipeline.clients.storage import ObjectStorage
from handlers.events import StorageMessage
from tests.seaweed import S3Server


async def test_watcher_delivers_create_overwrite_and_delete(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    delivered: list[tuple[str, str]] = []

    def deliver(event: dict[str, Any]) -> None:
        message = StorageMessage.model_validate(event["messages"][0])  # the real event shape parses
        delivered.append((message.action, message.details.object_id))

    watcher = BucketWatcher(s3_server.access, s3_bucket, "incoming/", deliver)

    async def poll() -> None:
        await asyncio.to_thread(watcher.poll)

    await storage.put(s3_bucket, "incoming/a.txt", b"one")
    await storage.put(s3_bucket, "elsewhere/b.txt", b"ignored: outside the prefix")
    await poll()
    await poll()  # nothing changed: nothing delivered
    await storage.put(s3_bucket, "incoming/a.txt", b"two")
    await poll()
    await storage.delete(s3_bucket, "incoming/a.txt")
    await poll()

    assert delivered == [
        ("ObjectCreate", "incoming/a.txt"),
        ("ObjectCreate", "incoming/a.txt"),
        ("ObjectDelete", "incoming/a.txt"),
    ]


async def test_a_watcher_started_from_now_fires_only_for_later_changes(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    """As a new trigger: what was there at the start is left to the timer's reconcile."""
    delivered: list[tuple[str, str]] = []

    def deliver(event: dict[str, Any]) -> None:
        message = StorageMessage.model_validate(event["messages"][0])
        delivered.append((message.action, message.details.object_id))

    await storage.put(s3_bucket, "incoming/before.txt", b"already there")
    watcher = BucketWatcher(s3_server.access, s3_bucket, "incoming/", deliver)
    await asyncio.to_thread(watcher.start_from_now)
    await storage.put(s3_bucket, "incoming/after.txt", b"new")
    await asyncio.to_thread(watcher.poll)
    await storage.delete(s3_bucket, "incoming/before.txt")
    await asyncio.to_thread(watcher.poll)

    assert delivered == [("ObjectCreate", "incoming/after.txt"), ("ObjectDelete", "incoming/before.txt")]
