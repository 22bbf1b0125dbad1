"""Object Storage (S3 API) over httpx: HEAD, streamed GET, conditional PUT, DELETE, ListObjectsV2,
multipart writes. No boto3: it costs cold-start time and cannot send Yandex's `Bearer` IAM form.

An `ObjectStorage` is cheap: it wraps the instance's shared `httpx.AsyncClient` (the connection pool)
with one invocation's credentials (s3_requests.py sends, retries and maps httpx's errors; multipart.py
writes large objects). Bodies are read raw (`aiter_raw`): an object stored with `Content-Encoding:
gzip` comes back as stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field

import httpx

from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.clients.multipart import MIN_PART_SIZE, MultipartUploads, ObjectWriter
from embedding_pipeline.clients.output_marks import OutputMarks, user_metadata
from embedding_pipeline.clients.s3_requests import S3Requests
from embedding_pipeline.clients.s3_responses import (
    ERROR_BODY_LIMIT,
    etag_of,
    free_sent_body,
    raise_if_no_bucket,
    read_prefix,
    split_lines,
    where,
)
from embedding_pipeline.clients.server_clock import ServerClock
from embedding_pipeline.errors import StorageError


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: str | None = None
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata (x-amz-meta-*), from a HEAD or GET


@dataclass(slots=True)
class _OpenBody:
    """A 200 response whose body is still streaming: the first piece read, the rest to come."""

    first: bytes
    rest: AsyncIterator[bytes]
    stream: AsyncExitStack  # closes the response


class ObjectStorage:
    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        auth: httpx.Auth,
        *,
        max_attempts: int = 3,
        server_clock: ServerClock | None = None,
        marks: OutputMarks | None = None,
    ) -> None:
        self._s3 = S3Requests(http, endpoint, auth, max_attempts=max_attempts, server_clock=server_clock)
        self.server_clock = self._s3.server_clock
        self._marks = marks  # what each output written says of itself (output_marks.py)
        self._send = self._s3.send
        self.multipart = MultipartUploads(self._s3, marks)

    @property
    def requests(self) -> Counter[str]:
        """Requests sent, by operation (LIST, GET, HEAD, PUT, DELETE, POST): what this client cost."""
        return self._s3.counted

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

        opened = await self._s3.request("GET", bucket, key, first_piece, ok=(200, 404))
        if opened is None:
            return
        async with opened.stream:
            try:
                async for line in split_lines(opened.first, opened.rest):
                    yield line
            except HTTPX_ERRORS as exc:
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
        headers = {"Content-Type": content_type, **(self._marks.headers(key) if self._marks else {})}
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
        writer = ObjectWriter(
            self.multipart, self, bucket=bucket, key=key, content_type=content_type, part_size=part_size
        )
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
        metadata=user_metadata(response.headers),
    )
