"""Functional: the Object Storage client against a real SeaweedFS (and respx where it cannot show a case)."""

from __future__ import annotations

import httpx
import pytest
import respx

from devstack.s3server import free_port
from embedding_pipeline.errors import DocumentTooLarge, StorageAccessDenied, StorageError
from embedding_pipeline.storage import ObjectStorage, bearer_auth, sigv4_auth
from tests.seaweed import S3Server

ODD_KEYS = [
    "incoming/with space.txt",
    "incoming/plus+sign.txt",
    "incoming/percent%20literal.txt",
    "incoming/question?mark.txt",
    "incoming/hash#tag.txt",
    "incoming/Отчёт за 2025 год.md",
    "incoming/emoji 📄.txt",
]


async def test_put_head_get_delete_round_trip(storage: ObjectStorage, s3_bucket: str) -> None:
    etag = await storage.put(s3_bucket, "a/b.txt", b"hello", content_type="text/plain")
    info = await storage.head(s3_bucket, "a/b.txt")
    assert info is not None
    assert (info.size, info.etag) == (5, etag)
    assert await storage.get(s3_bucket, "a/b.txt", max_bytes=100) == b"hello"
    await storage.delete(s3_bucket, "a/b.txt")
    assert await storage.head(s3_bucket, "a/b.txt") is None
    assert await storage.get(s3_bucket, "a/b.txt", max_bytes=100) is None


@pytest.mark.parametrize("key", ODD_KEYS)
async def test_odd_keys_round_trip_exactly(storage: ObjectStorage, s3_bucket: str, key: str) -> None:
    await storage.put(s3_bucket, key, key.encode())
    assert await storage.get(s3_bucket, key, max_bytes=1000) == key.encode()
    assert [info.key async for info in storage.list_objects(s3_bucket)] == [key]


async def test_listing_follows_pages_and_filters_by_prefix(storage: ObjectStorage, s3_bucket: str) -> None:
    keys = [f"p/{n}.txt" for n in range(5)]
    for key in [*keys, "q/other.txt"]:
        await storage.put(s3_bucket, key, b"x")
    listed = [info.key async for info in storage.list_objects(s3_bucket, "p/", page_size=2)]
    assert listed == keys


async def test_if_none_match_refuses_an_existing_key(storage: ObjectStorage, s3_bucket: str) -> None:
    assert await storage.put(s3_bucket, "once", b"1", if_none_match=True) is not None
    assert await storage.put(s3_bucket, "once", b"2", if_none_match=True) is None
    assert await storage.get(s3_bucket, "once", max_bytes=10) == b"1"


async def test_if_match_writes_only_over_the_expected_version(storage: ObjectStorage, s3_bucket: str) -> None:
    etag = await storage.put(s3_bucket, "v", b"1")
    assert etag
    assert await storage.put(s3_bucket, "v", b"2", if_match="0" * 32) is None
    assert await storage.put(s3_bucket, "v", b"3", if_match=etag) is not None
    assert await storage.get(s3_bucket, "v", max_bytes=10) == b"3"


async def test_get_stops_at_the_size_cap(storage: ObjectStorage, s3_bucket: str) -> None:
    await storage.put(s3_bucket, "big", b"x" * 10_000)
    with pytest.raises(DocumentTooLarge):
        await storage.get(s3_bucket, "big", max_bytes=9_999)


async def test_delete_of_a_missing_key_is_fine(storage: ObjectStorage, s3_bucket: str) -> None:
    await storage.delete(s3_bucket, "never-written")
    assert await storage.head(s3_bucket, "never-written") is None


async def test_wrong_secret_is_refused(s3_server: S3Server, s3_bucket: str) -> None:
    async with httpx.AsyncClient() as http:
        intruder = ObjectStorage(
            http, s3_server.endpoint, sigv4_auth(s3_server.access_key, "wrong", "ru-central1")
        )
        with pytest.raises(StorageAccessDenied, match="403"):
            await intruder.put(s3_bucket, "x", b"x")


async def test_read_only_identity_cannot_write(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, "readable", b"ok")
    async with httpx.AsyncClient() as http:
        reader = ObjectStorage(
            http,
            s3_server.endpoint,
            sigv4_auth(s3_server.readonly_access_key, s3_server.readonly_secret_key, "ru-central1"),
        )
        assert await reader.get(s3_bucket, "readable", max_bytes=10) == b"ok"
        with pytest.raises(StorageAccessDenied):
            await reader.put(s3_bucket, "x", b"x")


async def test_small_writer_is_one_put(storage: ObjectStorage, s3_bucket: str) -> None:
    async with storage.open_writer(s3_bucket, "small.jsonl", content_type="application/x-ndjson") as writer:
        await writer.write(b"line 1\n")
        await writer.write(b"line 2\n")
    assert writer.etag
    assert [line async for line in storage.iter_lines(s3_bucket, "small.jsonl")] == [b"line 1", b"line 2"]


async def test_large_writer_uploads_parts(storage: ObjectStorage, s3_bucket: str) -> None:
    line = b"0123456789abcdef" * 64 + b"\n"  # 1 KiB
    async with storage.open_writer(
        s3_bucket, "large.jsonl", content_type="application/x-ndjson", part_size=5 * 1024 * 1024
    ) as writer:
        for _ in range(11 * 1024):
            await writer.write(line)
    assert writer.etag
    assert "-" in writer.etag  # S3's multipart ETag: "<md5>-<parts>"
    data = await storage.get(s3_bucket, "large.jsonl", max_bytes=20 * 1024 * 1024)
    assert data == line * 11 * 1024


async def test_writer_failure_leaves_no_object(storage: ObjectStorage, s3_bucket: str) -> None:
    async def write_then_fail() -> None:
        async with storage.open_writer(
            s3_bucket, "partial", content_type="text/plain", part_size=5 * 1024 * 1024
        ) as writer:
            await writer.write(b"x" * (6 * 1024 * 1024))  # one part already uploaded
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await storage.head(s3_bucket, "partial") is None


async def test_iter_lines_of_a_missing_key_yields_nothing(storage: ObjectStorage, s3_bucket: str) -> None:
    assert [line async for line in storage.iter_lines(s3_bucket, "absent")] == []


async def test_create_bucket_is_idempotent(storage: ObjectStorage, s3_bucket: str) -> None:
    await storage.create_bucket(s3_bucket)
    assert [info async for info in storage.list_objects(s3_bucket)] == []


async def test_connection_refused_becomes_storage_error() -> None:
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, f"http://127.0.0.1:{free_port()}", bearer_auth("t1.x"), max_attempts=2)
        with pytest.raises(StorageError, match="ConnectError"):
            await storage.head("bucket", "key")
        with pytest.raises(StorageError, match="ConnectError"):
            await storage.get("bucket", "key", max_bytes=10)
        with pytest.raises(StorageError):
            await storage.put("bucket", "key", b"x")


@respx.mock
async def test_server_errors_are_retried_then_succeed() -> None:
    route = respx.put("https://storage.yandexcloud.net/b/k").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, headers={"ETag": '"abc"'})]
    )
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, "https://storage.yandexcloud.net", bearer_auth("t1.x"))
        assert await storage.put("b", "k", b"x") == "abc"
    assert route.call_count == 3


@respx.mock
async def test_timeouts_exhaust_retries_into_storage_error() -> None:
    respx.head("https://storage.yandexcloud.net/b/k").mock(side_effect=httpx.ReadTimeout("slow"))
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, "https://storage.yandexcloud.net", bearer_auth("t1.x"), max_attempts=2)
        with pytest.raises(StorageError, match="ReadTimeout"):
            await storage.head("b", "k")


@respx.mock
async def test_bearer_token_is_sent_and_never_shown() -> None:
    token = "t1.9euelZrGsecret-iam-token"
    route = respx.get("https://storage.yandexcloud.net/b/%D0%BA%D0%BB%D1%8E%D1%87%20x").mock(
        return_value=httpx.Response(
            403, content=b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        )
    )
    auth = bearer_auth(token)
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, "https://storage.yandexcloud.net", auth)
        with pytest.raises(StorageAccessDenied) as raised:
            await storage.get("b", "ключ x", max_bytes=10)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {token}"
    assert token not in str(raised.value)
    assert "AccessDenied" in str(raised.value)
    assert token not in repr(auth)
