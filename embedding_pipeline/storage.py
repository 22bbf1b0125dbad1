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
import gc
import hashlib
import random
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from embedding_pipeline import _s3xml
from embedding_pipeline.errors import DocumentTooLarge, StorageAccessDenied, StorageError, UnsafeKey

_RETRY_BASE_S = 0.2
_RETRY_CAP_S = 2.0
_MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last
_COLLECT_AFTER_BYTES = 1024 * 1024
_ERROR_BODY_LIMIT = 64 * 1024  # S3 error documents are small; a proxy's HTML page need not be read whole
# Worth another attempt. Not: a bad URL, an unsupported scheme, a request httpx itself refuses to send.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)


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
        self._max_attempts = max(1, max_attempts)

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
        """One request, retried on 5xx, 429 and transport failures; (response, body) or a mapped error.

        Streamed, so that with `max_bytes` a 200 body over the cap stops downloading at once.
        Only idempotent requests come here, except CompleteMultipartUpload (see `_complete_multipart`).
        """
        url, where = self._url(bucket, key), _where(bucket, key)
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(_backoff_delay(attempt - 1))
            try:
                async with self._http.stream(
                    method, url, params=params, content=content, headers=headers, auth=self._auth
                ) as response:
                    status = response.status_code
                    if status == 200 and max_bytes is not None:
                        body = await _read_capped(response, max_bytes)
                    else:
                        body = await _read_prefix(response, None if status in ok else _ERROR_BODY_LIMIT)
            except _TRANSIENT as exc:
                failure = type(exc).__name__
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise StorageError(f"{method} {where} failed: {type(exc).__name__}") from None
            if status in ok:
                return response, body
            failure = _retryable_or_raise(method, where, status, body)
        raise StorageError(f"{method} {where} failed after {self._max_attempts} attempts: {failure}")

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
            _raise_if_no_bucket("GET", bucket, key, body)
            return None
        return body, _info(key, response, size=len(body))

    async def iter_lines(self, bucket: str, key: str) -> AsyncIterator[bytes]:
        """Stream an object line by line without holding it whole; nothing if it is absent.

        Blank lines are skipped. Retried like a GET until the first line is out; a failure after that
        raises StorageError, since lines already yielded cannot be taken back.
        """
        url, where = self._url(bucket, key), _where(bucket, key)
        failure, started = "", False
        for attempt in range(1, self._max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(_backoff_delay(attempt - 1))
            try:
                async with self._http.stream("GET", url, auth=self._auth) as response:
                    status = response.status_code
                    if status == 200:
                        line = bytearray()
                        async for piece in response.aiter_raw():
                            start = 0
                            while (end := piece.find(b"\n", start)) >= 0:
                                line += piece[start:end]
                                start = end + 1
                                if line:
                                    started = True
                                    yield bytes(line)
                                    line.clear()
                            line += piece[start:]
                        if line:
                            yield bytes(line)
                        return
                    body = await _read_prefix(response, _ERROR_BODY_LIMIT)
            except _TRANSIENT as exc:
                if started:
                    raise StorageError(f"GET {where} broke off: {type(exc).__name__}") from None
                failure = type(exc).__name__
                continue
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise StorageError(f"GET {where} failed: {type(exc).__name__}") from None
            if status == 404:
                _raise_if_no_bucket("GET", bucket, key, body)
                return
            failure = _retryable_or_raise("GET", where, status, body)
        raise StorageError(f"GET {where} failed after {self._max_attempts} attempts: {failure}")

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
            _raise_if_no_bucket("PUT", bucket, key, body)
        etag = _etag(response) if response.status_code == 200 else None
        del response
        _free_sent_body(len(data))
        return etag

    async def delete(self, bucket: str, key: str) -> None:
        """Idempotent: a missing key is fine, a missing bucket is not (it is a configuration error)."""
        response, body = await self._send("DELETE", bucket, key, ok=(200, 204, 404))
        if response.status_code == 404:
            _raise_if_no_bucket("DELETE", bucket, key, body)

    async def list_objects(
        self, bucket: str, prefix: str = "", *, page_size: int = 1000
    ) -> AsyncIterator[ObjectInfo]:
        """ListObjectsV2, every page. (Not `list`: that name would shadow the builtin in this class.)"""
        params = {"list-type": "2", "encoding-type": "url", "max-keys": str(page_size)}
        if prefix:
            params["prefix"] = prefix
        while True:
            _, body = await self._send("GET", bucket, params=params)
            try:
                page = _s3xml.list_page(body)
            except ValueError as exc:
                raise StorageError(f"LIST s3://{bucket}/{prefix}*: {exc}") from None
            for key, size, etag, modified in page.objects:
                yield ObjectInfo(key, size, etag, modified)
            if page.continuation_token is None:
                return
            params["continuation-token"] = page.continuation_token

    async def create_bucket(self, bucket: str) -> None:
        response, body = await self._send("PUT", bucket, ok=(200, 409))
        if response.status_code == 409 and _s3xml.error(body)[0] != "BucketAlreadyOwnedByYou":
            raise StorageError(f"bucket {bucket} exists and belongs to someone else")

    @asynccontextmanager
    async def open_writer(
        self, bucket: str, key: str, *, content_type: str, part_size: int = _MIN_PART_SIZE
    ) -> AsyncIterator[ObjectWriter]:
        """Write a large object in bounded memory: one PUT if small, else a multipart upload.

        If the block (or the final upload) fails, a started multipart upload is aborted, nothing is
        written, and the original error propagates: a failed abort is left to the bucket's lifecycle rule.
        """
        writer = ObjectWriter(self, bucket, key, content_type, max(part_size, _MIN_PART_SIZE))
        try:
            yield writer
            await writer._finish()
        except BaseException:
            with suppress(StorageError):
                await writer._abort()
            raise

    async def _complete_multipart(self, bucket: str, key: str, upload_id: str, etags: list[str]) -> str:
        """Complete is not idempotent: a retry after a lost success gets NoSuchUpload. That counts as
        success only if the object now carries the ETag these parts add up to."""
        response, body = await self._send(
            "POST",
            bucket,
            key,
            params={"uploadId": upload_id},
            content=_s3xml.complete_body(etags),
            headers={"Content-Type": "application/xml"},
            ok=(200, 404),
        )
        if response.status_code == 404:
            expected = _multipart_etag(etags)
            current = await self.head(bucket, key)
            if expected is not None and current is not None and current.etag == expected:
                return expected
            raise _status_error("POST", _where(bucket, key), 404, body)
        if _s3xml.is_error(body):
            code, message = _s3xml.error(body)
            raise StorageError(f"POST {_where(bucket, key)} (complete) failed after 200: {code}: {message}")
        return _s3xml.completed_etag(body) or _etag(response)


class ObjectWriter:
    """Buffers writes and uploads whole parts as they fill: memory stays near one part."""

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
        self.etag: str | None = None  # set once the object is written, on leaving the block
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_size:
            await self._upload_part()

    async def _upload_part(self) -> None:
        bucket, key = self._bucket, self._key
        if self._upload_id is None:
            headers = {"Content-Type": self._content_type}
            _, body = await self._storage._send("POST", bucket, key, params={"uploads": ""}, headers=headers)
            try:
                self._upload_id = _s3xml.upload_id(body)
            except ValueError as exc:
                raise StorageError(f"POST {_where(bucket, key)}: {exc}") from None
        with memoryview(self._buffer) as view:  # one copy of the part, not a slice and then a copy
            part = bytes(view[: self._part_size])
        del self._buffer[: self._part_size]
        params = {"partNumber": str(len(self._etags) + 1), "uploadId": self._upload_id}
        response, _ = await self._storage._send("PUT", bucket, key, params=params, content=part)
        self._etags.append(_etag(response))
        del response, part
        _free_sent_body(self._part_size)

    async def _finish(self) -> None:
        if self._upload_id is None:
            self.etag = await self._storage.put(
                self._bucket, self._key, bytes(self._buffer), content_type=self._content_type
            )
            return
        while self._buffer:
            await self._upload_part()
        upload_id = self._upload_id
        self.etag = await self._storage._complete_multipart(self._bucket, self._key, upload_id, self._etags)
        self._upload_id = None

    async def _abort(self) -> None:
        if self._upload_id is not None:
            params = {"uploadId": self._upload_id}
            await self._storage._send("DELETE", self._bucket, self._key, params=params, ok=(200, 204, 404))
            self._upload_id = None


def _free_sent_body(size: int) -> None:
    """Free a large request body now, not whenever the cyclic collector gets to it.

    httpx's request, response and connection-pool streams form reference cycles, and the request
    holds the body it sent. By the time the collector runs they have aged into an old generation, so
    bodies pile up: six 8 MB parts at once while writing the records of a 20 MB document.
    """
    if size >= _COLLECT_AFTER_BYTES:
        gc.collect()


def _where(bucket: str, key: str | None) -> str:
    return f"s3://{bucket}/{key or ''}"


def _etag(response: httpx.Response) -> str:
    return str(response.headers.get("ETag", "")).strip('"')


def _info(key: str, response: httpx.Response, *, size: int | None = None) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=int(response.headers.get("Content-Length") or 0) if size is None else size,
        etag=_etag(response),
        last_modified=response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
    )


def _multipart_etag(etags: list[str]) -> str | None:
    """S3's multipart ETag: MD5 of the parts' MD5s, `-<count>`. None if a part ETag is no MD5 (SSE-KMS)."""
    try:
        digests = b"".join(bytes.fromhex(etag) for etag in etags)
    except ValueError:
        return None
    if len(digests) != 16 * len(etags):
        return None
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(etags)}"


def _retryable_or_raise(method: str, where: str, status: int, body: bytes) -> str:
    """The failure to report if retries run out, or the mapped error for a status not worth retrying."""
    code = _s3xml.error(body)[0] if body else ""
    if status >= 500 or status == 429 or (status == 409 and code == "ConditionalRequestConflict"):
        return f"{status} {code}".rstrip()
    raise _status_error(method, where, status, body)


def _status_error(method: str, where: str, status: int, body: bytes) -> StorageError:
    """Code and Message from the body, never request headers: they carry the credentials."""
    error = StorageAccessDenied if status in (401, 403) else StorageError
    if not body:  # HEAD responses have none
        return error(f"{method} {where} answered {status}")
    code, message = _s3xml.error(body)
    return error(f"{method} {where} answered {status} {code}: {message}")


def _raise_if_no_bucket(method: str, bucket: str, key: str, body: bytes) -> None:
    if body and _s3xml.error(body)[0] == "NoSuchBucket":
        raise _status_error(method, _where(bucket, key), 404, body)


def _backoff_delay(retry: int) -> float:
    """Seconds before retry number `retry` (1-based): exponential from 0.2 s, capped at 2 s, jittered."""
    ceiling = min(_RETRY_CAP_S, _RETRY_BASE_S * 2 ** (retry - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = int(response.headers.get("Content-Length") or 0)
    if declared > max_bytes:
        raise DocumentTooLarge(f"{declared} bytes is over the limit of {max_bytes}")
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if len(body) > max_bytes:
            raise DocumentTooLarge(f"more than {max_bytes} bytes")
    return bytes(body)


async def _read_prefix(response: httpx.Response, limit: int | None) -> bytes:
    """The body, or its first `limit` bytes (the rest is dropped with the connection)."""
    body = bytearray()
    async for piece in response.aiter_raw():
        body += piece
        if limit is not None and len(body) >= limit:
            return bytes(body[:limit])
    return bytes(body)
