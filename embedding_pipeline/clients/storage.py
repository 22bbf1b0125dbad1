"""Object Storage (S3 API) over httpx: HEAD, streamed GET, conditional PUT, DELETE, ListObjectsV2,
multipart writes. No boto3: it costs cold-start time and cannot send Yandex's `Bearer` IAM form.

An `ObjectStorage` is cheap: it wraps the instance's shared `httpx.AsyncClient` (the connection pool)
with one invocation's credentials. Requests are path-style (`{endpoint}/{bucket}/{key}`), the key
percent-encoded byte for byte, which is also the canonical form SigV4 signs for S3.
httpx errors never leave this module: they become StorageError / StorageAccessDenied.
Bodies are read raw (`aiter_raw`): an object stored with `Content-Encoding: gzip` comes back as stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote

import httpx

from embedding_pipeline.clients import http_failures, xml_replies
from embedding_pipeline.clients.multipart import MIN_PART_SIZE, ObjectWriter
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.clients.s3_responses import (
    ERROR_BODY_LIMIT,
    etag_of,
    free_sent_body,
    raise_if_no_bucket,
    read_capped,
    read_prefix,
    retryable_or_raise,
    split_lines,
    where,
)
from embedding_pipeline.errors import StorageError, UnsafeKey

_RETRY_BASE_S = 0.2
_RETRY_CAP_S = 2.0
# Worth another attempt. Not: a bad URL, an unsupported scheme, a request httpx itself refuses to send.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)

T = TypeVar("T")
Reader = Callable[[httpx.Response, AsyncExitStack], Awaitable[T]]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: str | None = None
    content_type: str | None = None


class _Retry(Exception):
    """One attempt failed in a way worth another; `failure` is what to report if none succeeds."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


@dataclass(slots=True)
class _OpenBody:
    """A 200 response whose body is still streaming: the first piece read, the rest to come."""

    first: bytes
    rest: AsyncIterator[bytes]
    stream: AsyncExitStack  # closes the response


class ObjectStorage:
    def __init__(
        self, http: httpx.AsyncClient, endpoint: str, auth: httpx.Auth, *, max_attempts: int = 3
    ) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")
        self._auth = auth
        self._max_attempts = max(1, max_attempts)
        # Requests sent, by operation (LIST, GET, HEAD, PUT, DELETE, POST): what this client cost.
        self.requests: Counter[str] = Counter()

    def _url(self, bucket: str, key: str | None = None) -> str:
        if key is None:
            return f"{self._endpoint}/{quote(bucket, safe='')}/"
        # httpx resolves `.` and `..` segments (RFC 3986): such a key would address another object.
        if not key or any(segment in {".", ".."} for segment in key.split("/")):
            raise UnsafeKey(f"object key {key!r} cannot be addressed path-style")
        try:
            return f"{self._endpoint}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
        except UnicodeEncodeError:
            raise UnsafeKey(f"object key {key!r} is not valid Unicode") from None

    async def _request(
        self,
        method: str,
        bucket: str,
        key: str | None,
        read: Reader[T],
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> T:
        """The one retry loop: a request retried on 5xx, 429 and transport failures.

        `read` gets each response whose status is in `ok`, with the stack that closes it; a transport
        failure while it reads is retried like one before the answer. Only idempotent requests come
        here, except CompleteMultipartUpload (see multipart.py).
        """
        url, at = self._url(bucket, key), where(bucket, key)
        operation = "LIST" if key is None and method == "GET" and params is not None else method
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            self.requests[operation] += 1
            if attempt > 1:
                await asyncio.sleep(_backoff_delay(attempt - 1))
            try:
                async with AsyncExitStack() as stack:
                    response = await stack.enter_async_context(
                        self._http.stream(
                            method, url, params=params, content=content, headers=headers, auth=self._auth
                        )
                    )
                    if response.status_code in ok:
                        return await read(response, stack)
                    body = await read_prefix(response, ERROR_BODY_LIMIT)
                failure = retryable_or_raise(method, at, response.status_code, body)
            except _TRANSIENT as exc:
                failure = type(exc).__name__
            except http_failures.HTTPX_ERRORS as exc:
                raise StorageError(f"{method} {at} failed: {type(exc).__name__}") from None
        raise StorageError(f"{method} {at} failed after {self._max_attempts} attempts: {failure}")

    async def _send(
        self,
        method: str,
        bucket: str,
        key: str | None = None,
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        max_bytes: int | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """A request and its whole body; with `max_bytes`, a 200 body over the cap stops downloading."""

        async def whole_body(
            response: httpx.Response, _stack: AsyncExitStack
        ) -> tuple[httpx.Response, bytes]:
            if response.status_code == 200 and max_bytes is not None:
                return response, await read_capped(response, max_bytes)
            return response, await read_prefix(response, None)

        return await self._request(
            method, bucket, key, whole_body, params=params, content=content, headers=headers, ok=ok
        )

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        response, _ = await self._send("HEAD", bucket, key, ok=(200, 404))
        return None if response.status_code == 404 else _info(key, response)

    async def get(self, bucket: str, key: str, *, max_bytes: int) -> bytes | None:
        """The object's bytes, or None if absent; DocumentTooLarge as soon as more than max_bytes arrive."""
        found = await self.get_with_info(bucket, key, max_bytes=max_bytes)
        return None if found is None else found[0]

    async def get_with_info(
        self, bucket: str, key: str, *, max_bytes: int
    ) -> tuple[bytes, ObjectInfo] | None:
        """Like `get`, with the ETag of exactly the bytes returned (a HEAD after it could see a newer one)."""
        response, body = await self._send("GET", bucket, key, ok=(200, 404), max_bytes=max_bytes)
        if response.status_code == 404:
            raise_if_no_bucket("GET", bucket, key, body)
            return None
        return body, _info(key, response, size=len(body))

    async def iter_lines(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """Stream an object line by line without holding it whole; nothing if it is absent.

        Blank lines are skipped. Retried like a GET until the first piece of the body is in; a
        failure after that raises StorageError, since lines already yielded cannot be taken back.
        """

        async def first_piece(response: httpx.Response, stack: AsyncExitStack) -> _OpenBody | None:
            if response.status_code == 404:
                raise_if_no_bucket("GET", bucket, key, await read_prefix(response, ERROR_BODY_LIMIT))
                return None
            pieces = response.aiter_raw()
            first = await anext(pieces, b"")
            return _OpenBody(first, pieces, stack.pop_all())  # the response stays open for the caller

        opened = await self._request("GET", bucket, key, first_piece, ok=(200, 404))
        if opened is None:
            return
        async with opened.stream:
            try:
                async for line in split_lines(opened.first, opened.rest):
                    yield line
            except http_failures.HTTPX_ERRORS as exc:
                raise StorageError(f"GET {where(bucket, key)} broke off: {type(exc).__name__}") from None

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str | None:
        """Write the object; its ETag, or None when the precondition failed.

        A conditional write whose success was lost to a timeout reads as None on the retry: the key
        exists (`if_none_match`) or has moved on (`if_match`); callers must treat None that way.
        `if_match` on a missing object is a failed precondition too (AWS answers 404, SeaweedFS 412).
        """
        headers = {"Content-Type": content_type}
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = f'"{if_match.strip(chr(34))}"'
        ok = (200, 412, 404) if if_match is not None else (200, 412)
        response, body = await self._send("PUT", bucket, key, content=data, headers=headers, ok=ok)
        if response.status_code == 404:
            raise_if_no_bucket("PUT", bucket, key, body)
        etag = etag_of(response) if response.status_code == 200 else None
        del response
        free_sent_body(len(data))
        return etag

    async def delete(self, bucket: str, key: str) -> None:
        """Idempotent: a missing key is fine, a missing bucket is not (it is a configuration error)."""
        response, body = await self._send("DELETE", bucket, key, ok=(200, 204, 404))
        if response.status_code == 404:
            raise_if_no_bucket("DELETE", bucket, key, body)

    async def list_objects(
        self, bucket: str, prefix: str = "", *, start_after: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[ObjectInfo]:
        """ListObjectsV2, page after page as the caller reads on, in key order (UTF-8 bytes);
        `start_after` lists only keys after it. (Not `list`: that would shadow the builtin here.)"""
        params = {"list-type": "2", "encoding-type": "url", "max-keys": str(page_size)}
        if prefix:
            params["prefix"] = prefix
        if start_after is not None:
            params["start-after"] = start_after
        while True:
            _, body = await self._send("GET", bucket, params=params)
            try:
                page = xml_replies.list_page(body)
            except ValueError as exc:
                raise StorageError(f"LIST s3://{bucket}/{prefix}*: {exc}") from None
            for key, size, etag, modified in page.objects:
                yield ObjectInfo(key, size, etag, modified)
            if page.continuation_token is None:
                return
            params["continuation-token"] = page.continuation_token

    async def create_bucket(self, bucket: str) -> None:
        response, body = await self._send("PUT", bucket, ok=(200, 409))
        if response.status_code == 409 and xml_replies.error(body)[0] != "BucketAlreadyOwnedByYou":
            raise StorageError(f"bucket {bucket} exists and belongs to someone else")

    @asynccontextmanager
    async def open_writer(
        self, bucket: str, key: str, *, content_type: str, part_size: int = MIN_PART_SIZE
    ) -> AsyncIterator[ObjectWriter]:
        """Write a large object in bounded memory: one PUT if small, else a multipart upload.

        If the block (or the final upload) fails, a started multipart upload is aborted, nothing is
        written, and the original error propagates: a failed abort is left to the bucket's lifecycle rule.
        """
        writer = ObjectWriter(self, bucket, key, content_type, part_size)
        try:
            yield writer
            await writer.finish()
        except BaseException:
            with suppress(StorageError):
                await writer.abort()
            raise


def _info(key: str, response: httpx.Response, *, size: int | None = None) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(response.headers.get("Content-Length") or 0) if size is None else size,
        etag=etag_of(response),
        last_modified=response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
    )


def _backoff_delay(retry: int) -> float:
    """Seconds before retry number `retry` (1-based): from 0.2 s, capped at 2 s (see clients/retry.py)."""
    return backoff_delay(retry, base=_RETRY_BASE_S, cap=_RETRY_CAP_S)
