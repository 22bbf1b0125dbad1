"""Object Storage (S3 API) over httpx: HEAD, streamed GET, conditional PUT, DELETE, ListObjectsV2,
multipart writes. No boto3: it costs cold-start time and cannot send Yandex's `Bearer` IAM form.

An `ObjectStorage` is cheap: it wraps the instance's shared `httpx.AsyncClient` (the connection pool)
with one invocation's credentials. Requests are path-style (`{endpoint}/{bucket}/{key}`).
httpx errors never leave this module: they become StorageError / StorageAccessDenied.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from embedding_pipeline import _s3xml
from embedding_pipeline.errors import DocumentTooLarge, StorageAccessDenied, StorageError

_RETRY_BASE_S = 0.2
_RETRY_CAP_S = 2.0
_MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: str | None = None
    content_type: str | None = None


class _BearerAuth(httpx.Auth):
    """Yandex's IAM-token form of S3 authentication: `Authorization: Bearer <token>`, no signature."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def bearer_auth(token: str) -> httpx.Auth:
    return _BearerAuth(token)


def sigv4_auth(access_key_id: str, secret_access_key: str, region: str) -> httpx.Auth:
    # Imported here: only deployments with static keys sign, and the import costs cold-start time.
    from httpx_auth import AWS4Auth  # noqa: PLC0415

    auth: httpx.Auth = AWS4Auth(
        access_id=access_key_id, secret_key=secret_access_key, region=region, service="s3"
    )
    return auth


class ObjectStorage:
    def __init__(
        self, http: httpx.AsyncClient, endpoint: str, auth: httpx.Auth, *, max_attempts: int = 3
    ) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/")
        self._auth = auth
        self._max_attempts = max_attempts

    def _url(self, bucket: str, key: str = "") -> str:
        return f"{self._endpoint}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"

    async def _send(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """One request with retries on 5xx, 429, timeouts and connection errors; errors mapped."""
        failure = ""
        for attempt in range(self._max_attempts):
            if attempt:
                await _pause(attempt)
            try:
                response = await self._http.request(
                    method,
                    self._url(bucket, key),
                    params=params,
                    content=content,
                    headers=headers,
                    auth=self._auth,
                )
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
                continue
            if response.status_code in ok:
                return response
            if not _retryable(response.status_code):
                raise _status_error(method, bucket, key, response)
            failure = f"{response.status_code} {_s3xml.error(response.content)[0]}"
        raise StorageError(
            f"{method} s3://{bucket}/{key} failed after {self._max_attempts} attempts: {failure}"
        )

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        response = await self._send("HEAD", bucket, key, ok=(200, 404))
        if response.status_code == 404:
            return None
        return _info(key, response)

    async def get(self, bucket: str, key: str, *, max_bytes: int) -> bytes | None:
        """The object's bytes, or None if absent; DocumentTooLarge as soon as more than max_bytes arrive."""
        failure = ""
        for attempt in range(self._max_attempts):
            if attempt:
                await _pause(attempt)
            try:
                async with self._http.stream("GET", self._url(bucket, key), auth=self._auth) as response:
                    if response.status_code == 404:
                        return None
                    if response.status_code == 200:
                        return await _read_capped(response, max_bytes)
                    await response.aread()
            except httpx.HTTPError as exc:
                failure = type(exc).__name__
                continue
            if not _retryable(response.status_code):
                raise _status_error("GET", bucket, key, response)
            failure = str(response.status_code)
        raise StorageError(f"GET s3://{bucket}/{key} failed after {self._max_attempts} attempts: {failure}")

    async def iter_lines(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """Stream a large object line by line (previous JSONL outputs); nothing if it is absent."""
        try:
            async with self._http.stream("GET", self._url(bucket, key), auth=self._auth) as response:
                if response.status_code == 404:
                    return
                if response.status_code != 200:
                    await response.aread()
                    raise _status_error("GET", bucket, key, response)
                pending = b""
                async for piece in response.aiter_bytes():
                    pending += piece
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line:
                            yield line
                if pending:
                    yield pending
        except httpx.HTTPError as exc:
            raise StorageError(f"GET s3://{bucket}/{key} failed: {type(exc).__name__}") from None

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
        """Write the object; return its ETag, or None when the precondition failed (412)."""
        headers = {"Content-Type": content_type}
        if if_none_match:
            headers["If-None-Match"] = "*"
        if if_match is not None:
            headers["If-Match"] = f'"{if_match}"'
        response = await self._send("PUT", bucket, key, content=data, headers=headers, ok=(200, 412))
        if response.status_code == 412:
            return None
        return str(response.headers.get("ETag", "")).strip('"')

    async def delete(self, bucket: str, key: str) -> None:
        await self._send("DELETE", bucket, key, ok=(200, 204, 404))

    async def list_objects(
        self, bucket: str, prefix: str = "", *, page_size: int = 1000
    ) -> AsyncIterator[ObjectInfo]:
        params = {"list-type": "2", "prefix": prefix, "max-keys": str(page_size)}
        while True:
            response = await self._send("GET", bucket, params=params)
            page = _s3xml.list_page(response.content)
            for key, size, etag, modified in page.objects:
                yield ObjectInfo(key, size, etag, modified)
            if not page.continuation_token:
                return
            params = {**params, "continuation-token": page.continuation_token}

    async def create_bucket(self, bucket: str) -> None:
        response = await self._send("PUT", bucket, ok=(200, 409))
        if response.status_code == 409 and _s3xml.error(response.content)[0] != "BucketAlreadyOwnedByYou":
            raise StorageError(f"bucket {bucket} exists and belongs to someone else")

    @asynccontextmanager
    async def open_writer(
        self, bucket: str, key: str, *, content_type: str, part_size: int = 8 * 1024 * 1024
    ) -> AsyncIterator[ObjectWriter]:
        """Write a large object in bounded memory: one PUT if small, else a multipart upload.

        If the block raises, a started multipart upload is aborted and nothing is written.
        """
        writer = ObjectWriter(self, bucket, key, content_type, max(part_size, _MIN_PART_SIZE))
        try:
            yield writer
        except BaseException:
            await writer.abort()
            raise
        await writer.finish()

    async def _create_multipart(self, bucket: str, key: str, content_type: str) -> str:
        response = await self._send(
            "POST", bucket, key, params={"uploads": ""}, headers={"Content-Type": content_type}
        )
        return _s3xml.upload_id(response.content)

    async def _upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        response = await self._send(
            "PUT", bucket, key, params={"partNumber": str(number), "uploadId": upload_id}, content=data
        )
        return str(response.headers.get("ETag", "")).strip('"')

    async def _complete_multipart(self, bucket: str, key: str, upload_id: str, etags: list[str]) -> str:
        body = _s3xml.complete_body(etags)
        response = await self._send("POST", bucket, key, params={"uploadId": upload_id}, content=body)
        return _s3xml.completed_etag(response.content)

    async def _abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        await self._send("DELETE", bucket, key, params={"uploadId": upload_id}, ok=(200, 204, 404))


class ObjectWriter:
    def __init__(
        self, storage: ObjectStorage, bucket: str, key: str, content_type: str, part_size: int
    ) -> None:
        self._storage = storage
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._etags: list[str] = []
        self.etag: str | None = None
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= self._part_size:
            await self._flush_part()

    async def _flush_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = await self._storage._create_multipart(
                self._bucket, self._key, self._content_type
            )
        part = bytes(self._buffer[: self._part_size])
        del self._buffer[: self._part_size]
        self._etags.append(
            await self._storage._upload_part(
                self._bucket, self._key, self._upload_id, len(self._etags) + 1, part
            )
        )

    async def finish(self) -> None:
        if self._upload_id is None:
            self.etag = await self._storage.put(
                self._bucket, self._key, bytes(self._buffer), content_type=self._content_type
            )
            return
        while self._buffer:
            await self._flush_part()
        self.etag = await self._storage._complete_multipart(
            self._bucket, self._key, self._upload_id, self._etags
        )

    async def abort(self) -> None:
        if self._upload_id is not None:
            await self._storage._abort_multipart(self._bucket, self._key, self._upload_id)
            self._upload_id = None


def _retryable(status: int) -> bool:
    return status >= 500 or status == 429


def _status_error(method: str, bucket: str, key: str, response: httpx.Response) -> StorageError:
    code, message = _s3xml.error(response.content)
    error = StorageAccessDenied if response.status_code in (401, 403) else StorageError
    return error(f"{method} s3://{bucket}/{key} answered {response.status_code} {code}: {message}")


async def _pause(attempt: int) -> None:
    """Exponential backoff with jitter between attempts (not a security use of random)."""
    ceiling = min(_RETRY_CAP_S, _RETRY_BASE_S * 2**attempt)
    await asyncio.sleep(random.uniform(ceiling / 2, ceiling))  # noqa: S311


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = int(response.headers.get("Content-Length", "0") or 0)
    if declared > max_bytes:
        raise DocumentTooLarge(f"{declared} bytes is over the limit of {max_bytes}")
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > max_bytes:
            raise DocumentTooLarge(f"more than {max_bytes} bytes")
    return bytes(body)


def _info(key: str, response: httpx.Response) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(response.headers.get("Content-Length", "0") or 0),
        etag=response.headers.get("ETag", "").strip('"'),
        last_modified=response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
    )
