"""Functional: the Object Storage client against a real SeaweedFS (and respx where it cannot show a case)."""

from __future__ import annotations

import gc
import gzip
import hashlib
import socket
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from devstack.s3server import free_port
from embedding_pipeline.clients import s3_requests as storage_module
from embedding_pipeline.clients.auth import bearer_auth, sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import DocumentTooLarge, StorageAccessDenied, StorageError, UnsafeKey
from tests.seaweed import S3Server

YC = "https://storage.yandexcloud.net"
TOKEN = "t1.9euelZrGsecret-iam-token"
MiB = 1024 * 1024

ODD_KEYS = [
    "incoming/with space.txt",
    "incoming/plus+sign.txt",
    "incoming/percent%20literal.txt",
    "incoming/question?mark.txt",
    "incoming/hash#tag.txt",
    "incoming/Отчёт за 2025 год.md",
    "incoming/Папка с пробелом/файл+1.md",
    "incoming/emoji 📄.txt",
    "incoming/control\x01and\ttab.txt",
]
# Not here: "a//b". SeaweedFS stores keys as filer paths and lists it as "a/b"; S3 and Yandex keep it.


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records each retry's number instead of sleeping: the tests stay fast and can count attempts."""
    seen: list[int] = []

    def no_wait(retry: int) -> float:
        seen.append(retry)
        return 0.0

    monkeypatch.setattr(storage_module, "_backoff_delay", no_wait)
    return seen


def yandex(max_attempts: int = 3) -> tuple[httpx.AsyncClient, ObjectStorage]:
    http = httpx.AsyncClient()
    return http, ObjectStorage(http, YC, bearer_auth(TOKEN), max_attempts=max_attempts)


def assert_clean(error: BaseException) -> None:
    """No credential in the message and no httpx exception attached to it."""
    assert TOKEN not in str(error)
    assert not isinstance(error.__cause__, httpx.HTTPError)
    assert error.__cause__ is None or error.__suppress_context__


# --- against SeaweedFS -------------------------------------------------------------------------


async def test_put_head_get_delete_round_trip(storage: ObjectStorage, s3_bucket: str) -> None:
    etag = await storage.put(s3_bucket, "a/b.txt", b"hello", content_type="text/plain")
    assert etag == hashlib.md5(b"hello").hexdigest()
    info = await storage.head(s3_bucket, "a/b.txt")
    assert info is not None
    assert (info.key, info.size, info.etag, info.content_type) == ("a/b.txt", 5, etag, "text/plain")
    assert info.last_modified
    assert await storage.get(s3_bucket, "a/b.txt", max_bytes=100) == b"hello"
    await storage.delete(s3_bucket, "a/b.txt")
    assert await storage.head(s3_bucket, "a/b.txt") is None
    assert await storage.get(s3_bucket, "a/b.txt", max_bytes=100) is None


async def test_get_with_info_reports_the_etag_of_the_bytes_returned(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    etag = await storage.put(s3_bucket, "doc.md", "# Заголовок".encode(), content_type="text/markdown")
    found = await storage.get_with_info(s3_bucket, "doc.md", max_bytes=100)
    assert found is not None
    data, info = found
    assert data == "# Заголовок".encode()
    assert (info.key, info.size, info.etag, info.content_type) == ("doc.md", len(data), etag, "text/markdown")
    assert await storage.get_with_info(s3_bucket, "absent", max_bytes=100) is None


@pytest.mark.parametrize("key", ODD_KEYS)
async def test_odd_keys_round_trip_exactly(storage: ObjectStorage, s3_bucket: str, key: str) -> None:
    etag = await storage.put(s3_bucket, key, key.encode())
    info = await storage.head(s3_bucket, key)
    assert info is not None
    assert (info.key, info.etag, info.size) == (key, etag, len(key.encode()))
    assert await storage.get(s3_bucket, key, max_bytes=1000) == key.encode()
    assert [info.key async for info in storage.list_objects(s3_bucket)] == [key]
    assert [info.key async for info in storage.list_objects(s3_bucket, key)] == [key]
    assert [line async for line in storage.iter_lines(s3_bucket, key)] == [key.encode()]
    await storage.delete(s3_bucket, key)
    assert await storage.head(s3_bucket, key) is None


@pytest.mark.parametrize("key", ["", "a/../b", "../b", "a/./b", "a/.", "..", "bad\ud800surrogate"])
async def test_keys_that_http_would_rewrite_are_refused(
    storage: ObjectStorage, s3_bucket: str, key: str
) -> None:
    with pytest.raises(UnsafeKey):
        await storage.put(s3_bucket, key, b"x")
    with pytest.raises(UnsafeKey):
        await storage.get(s3_bucket, key, max_bytes=10)
    assert [info.key async for info in storage.list_objects(s3_bucket)] == []


async def test_listing_follows_pages_and_filters_by_prefix(storage: ObjectStorage, s3_bucket: str) -> None:
    keys = [f"p/{n}.txt" for n in range(5)]
    for key in [*keys, "q/other.txt", "p-sibling.txt"]:
        await storage.put(s3_bucket, key, key.encode())
    listed = [info async for info in storage.list_objects(s3_bucket, "p/", page_size=2)]
    assert [info.key for info in listed] == keys
    assert [info.size for info in listed] == [len(key) for key in keys]
    assert all(info.etag == hashlib.md5(info.key.encode()).hexdigest() for info in listed)
    assert len([info async for info in storage.list_objects(s3_bucket, page_size=2)]) == 7
    assert [info.key async for info in storage.list_objects(s3_bucket, "nothing/")] == []


async def test_listing_pages_over_unicode_keys_and_prefix(storage: ObjectStorage, s3_bucket: str) -> None:
    keys = sorted(f"отчёты/квартал {n}+итог.md" for n in range(5))
    for key in [*keys, "отчет/без ё.md"]:
        await storage.put(s3_bucket, key, b"x")
    assert [info.key async for info in storage.list_objects(s3_bucket, "отчёты/", page_size=2)] == keys


async def test_if_none_match_refuses_an_existing_key(storage: ObjectStorage, s3_bucket: str) -> None:
    assert await storage.put(s3_bucket, "once", b"1", if_none_match=True) is not None
    assert await storage.put(s3_bucket, "once", b"2", if_none_match=True) is None
    assert await storage.get(s3_bucket, "once", max_bytes=10) == b"1"


async def test_if_match_writes_only_over_the_expected_version(storage: ObjectStorage, s3_bucket: str) -> None:
    etag = await storage.put(s3_bucket, "v", b"1")
    assert etag
    assert await storage.put(s3_bucket, "v", b"2", if_match="0" * 32) is None
    assert await storage.get(s3_bucket, "v", max_bytes=10) == b"1"
    new_etag = await storage.put(s3_bucket, "v", b"3", if_match=etag)
    assert new_etag == hashlib.md5(b"3").hexdigest()
    assert await storage.get(s3_bucket, "v", max_bytes=10) == b"3"
    assert await storage.put(s3_bucket, "v", b"4", if_match=f'"{new_etag}"') is not None  # quoted is fine
    assert await storage.put(s3_bucket, "never-written", b"x", if_match=etag) is None
    assert await storage.head(s3_bucket, "never-written") is None


async def test_get_stops_at_the_size_cap(storage: ObjectStorage, s3_bucket: str) -> None:
    await storage.put(s3_bucket, "big", b"x" * 10_000)
    with pytest.raises(DocumentTooLarge):
        await storage.get(s3_bucket, "big", max_bytes=9_999)
    assert await storage.get(s3_bucket, "big", max_bytes=10_000) == b"x" * 10_000


async def test_missing_key_reads_as_none_and_deletes_fine(storage: ObjectStorage, s3_bucket: str) -> None:
    assert await storage.head(s3_bucket, "never-written") is None
    assert await storage.get(s3_bucket, "never-written", max_bytes=10) is None
    await storage.delete(s3_bucket, "never-written")
    await storage.delete(s3_bucket, "never-written")
    assert [line async for line in storage.iter_lines(s3_bucket, "never-written")] == []


async def test_missing_bucket_is_an_error_not_an_absent_key(storage: ObjectStorage) -> None:
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await storage.get("no-such-bucket-here", "k", max_bytes=10)
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await storage.delete("no-such-bucket-here", "k")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        [info async for info in storage.list_objects("no-such-bucket-here")]


async def test_wrong_secret_is_refused(s3_server: S3Server, s3_bucket: str) -> None:
    secret = "wrong-secret-key-value"
    async with httpx.AsyncClient() as http:
        intruder = ObjectStorage(
            http, s3_server.endpoint, sigv4_auth(s3_server.access_key, secret, "ru-central1")
        )
        with pytest.raises(StorageAccessDenied, match="403") as raised:
            await intruder.put(s3_bucket, "x", b"x")
        assert f"s3://{s3_bucket}/x" in str(raised.value)
        assert secret not in str(raised.value)
        assert s3_server.secret_key not in str(raised.value)
        with pytest.raises(StorageAccessDenied):
            [line async for line in intruder.iter_lines(s3_bucket, "x")]
        with pytest.raises(StorageAccessDenied):
            await intruder.head(s3_bucket, "x")


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
        assert [info.key async for info in reader.list_objects(s3_bucket)] == ["readable"]
        with pytest.raises(StorageAccessDenied, match="AccessDenied") as raised:
            await reader.put(s3_bucket, "x", b"x")
        assert s3_server.readonly_secret_key not in str(raised.value)
        with pytest.raises(StorageAccessDenied):
            await reader.delete(s3_bucket, "readable")
    assert await storage.head(s3_bucket, "x") is None
    assert await storage.get(s3_bucket, "readable", max_bytes=10) == b"ok"


async def test_small_writer_is_one_put(storage: ObjectStorage, s3_bucket: str) -> None:
    async with storage.open_writer(s3_bucket, "small.jsonl", content_type="application/x-ndjson") as writer:
        await writer.write(b"line 1\n")
        await writer.write(b"line 2\n")
    assert writer.etag == hashlib.md5(b"line 1\nline 2\n").hexdigest()
    assert writer.size == 14
    info = await storage.head(s3_bucket, "small.jsonl")
    assert info is not None
    assert (info.etag, info.content_type) == (writer.etag, "application/x-ndjson")


async def test_large_writer_uploads_parts(storage: ObjectStorage, s3_bucket: str) -> None:
    line = b"0123456789abcdef" * 64 + b"\n"  # 1 KiB
    async with storage.open_writer(
        s3_bucket, "large.jsonl", content_type="application/x-ndjson", part_size=5 * MiB
    ) as writer:
        for _ in range(11 * 1024):
            await writer.write(line)
    assert writer.etag is not None
    assert writer.etag.endswith("-3")  # S3's multipart ETag: "<md5 of part md5s>-<parts>"
    info = await storage.head(s3_bucket, "large.jsonl")
    assert info is not None
    assert (info.size, info.etag, info.content_type) == (
        len(line) * 11 * 1024,
        writer.etag,
        "application/x-ndjson",
    )
    data = await storage.get(s3_bucket, "large.jsonl", max_bytes=20 * MiB)
    assert data == line * 11 * 1024


async def test_one_huge_write_is_still_cut_into_parts(storage: ObjectStorage, s3_bucket: str) -> None:
    data = bytes(range(256)) * (12 * MiB // 256)
    async with storage.open_writer(s3_bucket, "huge", content_type="application/octet-stream") as writer:
        await writer.write(data)  # below the 5 MiB minimum a part size is raised to it
    parts = [data[: 5 * MiB], data[5 * MiB : 10 * MiB], data[10 * MiB :]]  # default parts: S3's 5 MiB minimum
    expected = hashlib.md5(b"".join(hashlib.md5(part).digest() for part in parts)).hexdigest()
    assert writer.etag == f"{expected}-3"
    assert await storage.get(s3_bucket, "huge", max_bytes=20 * MiB) == data


async def pending_uploads(s3_server: S3Server, bucket: str) -> str:
    """ListMultipartUploads, raw: the client itself has no use for it."""
    auth = sigv4_auth(s3_server.access_key, s3_server.secret_key, s3_server.region)
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{s3_server.endpoint}/{bucket}/", params={"uploads": ""}, auth=auth)
    assert response.status_code == 200
    assert "ListMultipartUploadsResult" in response.text
    return response.text


@pytest.mark.parametrize("written", [6 * MiB, 11 * MiB, 100])
async def test_writer_failure_leaves_no_object(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str, written: int
) -> None:
    async def write_then_fail() -> None:
        async with storage.open_writer(
            s3_bucket, "partial", content_type="text/plain", part_size=5 * MiB
        ) as writer:
            await writer.write(b"x" * written)  # with 6 MiB one part is already uploaded, with 11 MiB two
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await write_then_fail()
    assert await storage.head(s3_bucket, "partial") is None
    assert "<Upload>" not in await pending_uploads(s3_server, s3_bucket)


async def test_iter_lines_streams_a_multi_line_object(storage: ObjectStorage, s3_bucket: str) -> None:
    lines = [f'{{"n": {n}, "text": "строка {n}{"x" * (n % 977)}"}}'.encode() for n in range(20_000)]
    body = b"\n".join(lines[:10]) + b"\n\n" + b"\n".join(lines[10:])  # a blank line; no final newline
    await storage.put(s3_bucket, "records.jsonl", body)
    assert len(body) > 8 * MiB  # many network reads, lines split across them
    assert [line async for line in storage.iter_lines(s3_bucket, "records.jsonl")] == lines


async def test_create_bucket_is_idempotent(storage: ObjectStorage, s3_bucket: str) -> None:
    await storage.put(s3_bucket, "kept", b"1")
    await storage.create_bucket(s3_bucket)
    assert [info.key async for info in storage.list_objects(s3_bucket)] == ["kept"]


# --- transport failures: nothing from httpx gets out ---------------------------------------------


async def test_connection_refused_becomes_storage_error_after_retries(retries: list[int]) -> None:
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, f"http://127.0.0.1:{free_port()}", bearer_auth(TOKEN), max_attempts=3)
        calls = [
            storage.head("bucket", "key"),
            storage.get("bucket", "key", max_bytes=10),
            storage.put("bucket", "key", b"x"),
            storage.delete("bucket", "key"),
            storage.create_bucket("bucket"),
        ]
        for call in calls:
            with pytest.raises(StorageError, match="after 3 attempts: ConnectError") as raised:
                await call
            assert type(raised.value) is StorageError
            assert_clean(raised.value)
        with pytest.raises(StorageError, match="ConnectError") as raised:
            [info async for info in storage.list_objects("bucket")]
        assert_clean(raised.value)
        with pytest.raises(StorageError, match="ConnectError") as raised:
            [line async for line in storage.iter_lines("bucket", "key")]
        assert_clean(raised.value)
        with pytest.raises(StorageError, match="ConnectError") as raised:
            async with storage.open_writer("bucket", "key", content_type="text/plain") as writer:
                await writer.write(b"x")
        assert_clean(raised.value)
    assert retries == [1, 2] * 8


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def test_a_server_that_never_answers_times_out_into_storage_error(
    silent_port: int, retries: list[int]
) -> None:
    async with httpx.AsyncClient(timeout=0.2) as http:
        storage = ObjectStorage(http, f"http://127.0.0.1:{silent_port}", bearer_auth(TOKEN), max_attempts=2)
        with pytest.raises(StorageError, match="after 2 attempts: ReadTimeout") as raised:
            await storage.get("bucket", "key", max_bytes=10)
    assert_clean(raised.value)
    assert retries == [1]


@pytest.mark.parametrize("endpoint", ["ftp://127.0.0.1:21", "http://[::1"])
async def test_unusable_endpoints_fail_at_once(endpoint: str, retries: list[int]) -> None:
    async with httpx.AsyncClient() as http:
        storage = ObjectStorage(http, endpoint, bearer_auth(TOKEN))
        with pytest.raises(StorageError) as raised:
            await storage.head("bucket", "key")
    assert_clean(raised.value)
    assert retries == []


@respx.mock
async def test_timeouts_exhaust_retries_into_storage_error(retries: list[int]) -> None:
    route = respx.head(f"{YC}/b/k").mock(side_effect=httpx.ReadTimeout("slow"))
    http, storage = yandex(max_attempts=4)
    async with http:
        with pytest.raises(StorageError, match="after 4 attempts: ReadTimeout") as raised:
            await storage.head("b", "k")
    assert_clean(raised.value)
    assert route.call_count == 4
    assert retries == [1, 2, 3]


# --- status mapping, with respx ------------------------------------------------------------------


@respx.mock
async def test_server_errors_are_retried_then_succeed(retries: list[int]) -> None:
    route = respx.put(f"{YC}/b/k").mock(
        side_effect=[httpx.Response(503), httpx.Response(503), httpx.Response(200, headers={"ETag": '"abc"'})]
    )
    http, storage = yandex()
    async with http:
        assert await storage.put("b", "k", b"x") == "abc"
    assert route.call_count == 3
    assert all(call.request.content == b"x" for call in route.calls)
    assert retries == [1, 2]


@respx.mock
async def test_throttling_is_retried(retries: list[int]) -> None:
    slow_down = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
    route = respx.get(f"{YC}/b/k").mock(side_effect=[httpx.Response(429), httpx.Response(200, content=b"ok")])
    respx.head(f"{YC}/b/k").mock(return_value=httpx.Response(503, content=slow_down))
    http, storage = yandex()
    async with http:
        assert await storage.get("b", "k", max_bytes=10) == b"ok"
        with pytest.raises(StorageError, match="after 3 attempts: 503 SlowDown"):
            await storage.head("b", "k")
    assert route.call_count == 2


@respx.mock
async def test_other_statuses_fail_at_once_with_the_s3_code(retries: list[int]) -> None:
    body = b"<Error><Code>InvalidArgument</Code><Message>Bad max-keys</Message></Error>"
    route = respx.get(f"{YC}/b/").mock(return_value=httpx.Response(400, content=body))
    http, storage = yandex()
    async with http:
        with pytest.raises(StorageError, match="400 InvalidArgument: Bad max-keys") as raised:
            [info async for info in storage.list_objects("b")]
    assert type(raised.value) is StorageError
    assert route.call_count == 1
    assert retries == []


@respx.mock
async def test_an_unreadable_listing_is_an_error_not_an_empty_bucket() -> None:
    respx.get(f"{YC}/b/").mock(return_value=httpx.Response(200, content=b"<html>proxy says hi</html>"))
    http, storage = yandex()
    async with http:
        with pytest.raises(StorageError, match="not a ListBucketResult"):
            [info async for info in storage.list_objects("b")]


@respx.mock
async def test_get_stops_reading_once_over_the_cap_without_content_length() -> None:
    served = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal served
        for _ in range(10_000):
            served += 1
            yield b"x" * 1024

    respx.get(f"{YC}/b/k").mock(return_value=httpx.Response(200, content=endless()))
    respx.get(f"{YC}/b/declared").mock(
        return_value=httpx.Response(200, headers={"Content-Length": "5000000"}, content=endless())
    )
    http, storage = yandex()
    async with http:
        with pytest.raises(DocumentTooLarge):
            await storage.get("b", "k", max_bytes=10 * 1024)
        assert served == 11
        with pytest.raises(DocumentTooLarge, match="5000000 bytes"):
            await storage.get("b", "declared", max_bytes=10 * 1024)
        assert served == 11  # refused on Content-Length before any body


@respx.mock
async def test_bodies_come_back_as_stored_even_with_a_content_encoding() -> None:
    stored = gzip.compress(b"plain text")
    respx.get(f"{YC}/b/k.gz").mock(
        return_value=httpx.Response(200, headers={"Content-Encoding": "gzip"}, content=stored)
    )
    http, storage = yandex()
    async with http:
        assert await storage.get("b", "k.gz", max_bytes=1000) == stored


@respx.mock
async def test_iter_lines_retries_until_the_first_line(retries: list[int]) -> None:
    route = respx.get(f"{YC}/b/k").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(500), httpx.Response(200, content=b"a\nb")]
    )
    http, storage = yandex()
    async with http:
        assert [line async for line in storage.iter_lines("b", "k")] == [b"a", b"b"]
    assert route.call_count == 3


# --- multipart completion, with respx ------------------------------------------------------------


def multipart_routes(complete: list[httpx.Response | Exception], head_etag: str) -> dict[str, respx.Route]:
    def part(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"ETag": f'"{hashlib.md5(request.content).hexdigest()}"'})

    created = b"<InitiateMultipartUploadResult><UploadId>u-1</UploadId></InitiateMultipartUploadResult>"
    return {
        "create": respx.post(f"{YC}/b/k", params={"uploads": ""}).mock(
            return_value=httpx.Response(200, content=created)
        ),
        "part": respx.put(f"{YC}/b/k", params={"uploadId": "u-1"}).mock(side_effect=part),
        "complete": respx.post(f"{YC}/b/k", params={"uploadId": "u-1"}).mock(side_effect=complete),
        "head": respx.head(f"{YC}/b/k").mock(return_value=httpx.Response(200, headers={"ETag": head_etag})),
        "abort": respx.delete(f"{YC}/b/k", params={"uploadId": "u-1"}).mock(return_value=httpx.Response(204)),
    }


def no_such_upload() -> httpx.Response:
    return httpx.Response(404, content=b"<Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>")


DATA = b"a" * (5 * MiB) + b"b" * 100
DATA_ETAG = (
    hashlib.md5(hashlib.md5(b"a" * (5 * MiB)).digest() + hashlib.md5(b"b" * 100).digest()).hexdigest() + "-2"
)


async def write_data(storage: ObjectStorage) -> str | None:
    async with storage.open_writer("b", "k", content_type="text/plain", part_size=5 * MiB) as writer:
        await writer.write(DATA)
    return writer.etag


@respx.mock
async def test_a_complete_retried_after_a_lost_success_is_recognised(retries: list[int]) -> None:
    routes = multipart_routes([httpx.ReadTimeout("lost answer"), no_such_upload()], f'"{DATA_ETAG}"')
    http, storage = yandex()
    async with http:
        assert await write_data(storage) == DATA_ETAG
    assert routes["part"].call_count == 2
    assert routes["complete"].call_count == 2
    assert routes["abort"].call_count == 0


@respx.mock
async def test_no_such_upload_with_another_object_in_place_is_an_error(retries: list[int]) -> None:
    routes = multipart_routes([no_such_upload()], '"0123456789abcdef0123456789abcdef-2"')
    http, storage = yandex()
    async with http:
        with pytest.raises(StorageError, match="NoSuchUpload"):
            await write_data(storage)
    assert routes["abort"].call_count == 1


@respx.mock
async def test_a_complete_that_fails_after_200_is_an_error() -> None:
    failed = httpx.Response(
        200, content=b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
    )
    routes = multipart_routes([failed], '"x"')
    http, storage = yandex()
    async with http:
        with pytest.raises(StorageError, match="InternalError"):
            await write_data(storage)
    assert routes["abort"].call_count == 1


@respx.mock
async def test_parts_go_out_while_writing_so_memory_stays_near_one_part() -> None:
    done = b"<CompleteMultipartUploadResult><ETag>&quot;e-3&quot;</ETag></CompleteMultipartUploadResult>"
    routes = multipart_routes([httpx.Response(200, content=done)], '"x"')
    http, storage = yandex()
    async with http, storage.open_writer("b", "k", content_type="text/csv", part_size=5 * MiB) as writer:
        await writer.write(b"x" * (12 * MiB))
        assert routes["part"].call_count == 2  # only the last 2 MiB are still held
    assert writer.etag == "e-3"
    assert routes["create"].calls.last.request.headers["Content-Type"] == "text/csv"
    assert [len(call.request.content) for call in routes["part"].calls] == [5 * MiB, 5 * MiB, 2 * MiB]
    assert [call.request.url.params["partNumber"] for call in routes["part"].calls] == ["1", "2", "3"]
    completed = routes["complete"].calls.last.request.content
    assert completed.count(b"<Part>") == 3
    assert (
        f'<PartNumber>3</PartNumber><ETag>"{hashlib.md5(b"x" * (2 * MiB)).hexdigest()}"</ETag>'.encode()
        in completed
    )
    assert routes["abort"].call_count == 0


# --- credentials stay secret -------------------------------------------------------------------


def test_backoff_is_exponential_jittered_and_capped() -> None:
    for _ in range(100):
        assert 0.1 <= storage_module._backoff_delay(1) <= 0.2
        assert 0.2 <= storage_module._backoff_delay(2) <= 0.4
        assert 1.0 <= storage_module._backoff_delay(10) <= 2.0


def test_bearer_auth_repr_hides_the_token() -> None:
    assert "t1.secret" not in repr(bearer_auth("t1.secret"))
    assert "t1.secret" not in str(bearer_auth("t1.secret"))


@respx.mock
async def test_bearer_token_is_sent_and_never_shown(retries: list[int]) -> None:
    denied = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
    route = respx.get(f"{YC}/b/%D0%BA%D0%BB%D1%8E%D1%87%20x").mock(
        return_value=httpx.Response(403, content=denied)
    )
    respx.put(f"{YC}/b/k").mock(
        return_value=httpx.Response(500, content=b"<Error><Code>InternalError</Code></Error>")
    )
    respx.get(f"{YC}/b/k").mock(return_value=httpx.Response(401))
    http = httpx.AsyncClient()
    storage = ObjectStorage(http, YC, bearer_auth("t1.x"))
    async with http:
        with pytest.raises(StorageAccessDenied) as denied_error:
            await storage.get("b", "ключ x", max_bytes=10)
        with pytest.raises(StorageError) as failed:
            await storage.put("b", "k", b"x")
        with pytest.raises(StorageAccessDenied) as unauthorised:
            await storage.get("b", "k", max_bytes=10)
    assert route.calls.last.request.headers["Authorization"] == "Bearer t1.x"
    assert "AccessDenied" in str(denied_error.value)
    assert "s3://b/ключ x" in str(denied_error.value)
    assert "after 3 attempts: 500 InternalError" in str(failed.value)
    assert "401" in str(unauthorised.value)
    for error in (denied_error.value, failed.value, unauthorised.value):
        assert "t1.x" not in str(error)
        assert "Bearer" not in str(error)


async def test_sent_parts_are_freed_at_once_not_by_a_later_collection(
    storage: ObjectStorage, s3_bucket: str
) -> None:
    """httpx's reference cycles hold each sent body until the cyclic collector runs; the writer
    frees them itself, so only about one part is ever in memory (here with automatic collection off)."""
    gc.disable()
    tracemalloc.start()
    try:
        async with storage.open_writer(s3_bucket, "parts", content_type="application/octet-stream") as writer:
            for _ in range(4):
                await writer.write(bytes(5 * MiB))
            held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 2 * 5 * MiB  # four parts went out; without the collection all four would still be here
    assert writer.etag is not None
    assert writer.etag.endswith("-4")
