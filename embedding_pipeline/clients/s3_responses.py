"""Reading Object Storage's HTTP answers: bodies under a cap, ETags, and S3 errors mapped to ours.

Error messages carry S3's Code and Message from the body, never request headers: those hold the
credentials.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import httpx

from embedding_pipeline.clients import xml_replies
from embedding_pipeline.errors import DocumentTooLarge, StorageAccessDenied, StorageError

ERROR_BODY_LIMIT = 64 * 1024  # S3 error documents are small; a proxy's HTML page need not be read whole
_COLLECT_AFTER_BYTES = 1024 * 1024


def where(bucket: str, key: str | None) -> str:
    return f"s3://{bucket}/{key or ''}"


def etag_of(response: httpx.Response) -> str:
    return str(response.headers.get("ETag", "")).strip('"')


async def read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    """The whole body; DocumentTooLarge as soon as more than `max_bytes` are declared or arrive."""
    declared = int(response.headers.get("Content-Length") or 0)
    if declared > max_bytes:
        raise DocumentTooLarge(f"{declared} bytes is over the limit of {max_bytes}")
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if len(body) > max_bytes:
            raise DocumentTooLarge(f"more than {max_bytes} bytes")
    return bytes(body)


async def read_prefix(response: httpx.Response, limit: int | None) -> bytes:
    """The body, or its first `limit` bytes (the rest is dropped with the connection)."""
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if limit is not None and len(body) >= limit:
            return bytes(body[:limit])
    return bytes(body)


async def split_lines(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The lines of a body arriving in pieces (`first`, then `rest`); blank lines are skipped."""
    line = bytearray()

    async def pieces() -> AsyncIterator[bytes]:
        yield first
        async for piece in rest:
            yield piece

    async for piece in pieces():
        start = 0
        while (end := piece.find(b"\n", start)) >= 0:
            line += piece[start:end]
            start = end + 1
            if line:
                yield bytes(line)
                line.clear()
        line += piece[start:]
    if line:
        yield bytes(line)


def retryable_or_raise(method: str, at: str, status: int, body: bytes) -> str:
    """The failure to report if retries run out, or the mapped error for a status not worth retrying."""
    code = xml_replies.error(body)[0] if body else ""
    if status >= 500 or status == 429 or (status == 409 and code == "ConditionalRequestConflict"):
        return f"{status} {code}".rstrip()
    raise status_error(method, at, status, body)


def status_error(method: str, at: str, status: int, body: bytes) -> StorageError:
    error = StorageAccessDenied if status in (401, 403) else StorageError
    if not body:  # HEAD responses have none
        return error(f"{method} {at} answered {status}")
    code, message = xml_replies.error(body)
    return error(f"{method} {at} answered {status} {code}: {message}")


def raise_if_no_bucket(method: str, bucket: str, key: str, body: bytes) -> None:
    """A 404 for a missing bucket is a configuration error, not an absent key."""
    if body and xml_replies.error(body)[0] == "NoSuchBucket":
        raise status_error(method, where(bucket, key), 404, body)


def free_sent_body(size: int) -> None:
    """Free a large request body now, not whenever the cyclic collector gets to it.

    httpx's request, response and connection-pool streams form reference cycles, and the request
    holds the body it sent. By the time the collector runs they have aged into an old generation, so
    bodies pile up: six 8 MB parts at once while writing the records of a 20 MB document.
    """
    if size >= _COLLECT_AFTER_BYTES:
        gc.collect()
