"""Requests to an S3 endpoint over httpx: path-style URLs, one retry loop, the requests counted.

Requests are path-style (`{endpoint}/{bucket}/{key}`), the key percent-encoded byte for byte, which is
also the canonical form SigV4 signs for S3. This is the one boundary where httpx's errors become the
product's: nothing httpx raises leaves it as anything but StorageError / StorageAccessDenied.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TypeVar
from urllib.parse import quote

import httpx

from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.clients.retry import backoff_delay
from embedding_pipeline.clients.s3_responses import (
    ERROR_BODY_LIMIT,
    read_capped,
    read_prefix,
    retryable_or_raise,
    where,
)
from embedding_pipeline.clients.server_clock import ServerClock
from embedding_pipeline.errors import StorageError, UnsafeKey

_RETRY_BASE_S = 0.2
_RETRY_CAP_S = 2.0
# Worth another attempt. Not: a bad URL, an unsupported scheme, a request httpx itself refuses to send.
_TRANSIENT = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)

T = TypeVar("T")
Reader = Callable[[httpx.Response, AsyncExitStack], Awaitable[T]]


class S3Requests:
    """One invocation's credentials on the instance's shared connection pool."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        auth: httpx.Auth,
        *,
        max_attempts: int = 3,
        server_clock: ServerClock | None = None,
    ) -> None:
        self._http = http
        # Every answer's Date header tells it (the instance's one clock, shared by its invocations).
        self.server_clock = server_clock if server_clock is not None else ServerClock()
        self._endpoint = endpoint.rstrip("/")
        self._auth = auth
        self._max_attempts = max(1, max_attempts)
        # Requests sent, by operation (LIST, GET, HEAD, PUT, DELETE, POST): what this client cost.
        self.counted: Counter[str] = Counter()

    def url(self, bucket: str, key: str | None = None) -> str:
        if key is None:
            return f"{self._endpoint}/{quote(bucket, safe='')}/"
        # httpx resolves `.` and `..` segments (RFC 3986): such a key would address another object.
        if not key or any(segment in {".", ".."} for segment in key.split("/")):
            raise UnsafeKey(f"object key {key!r} cannot be addressed path-style")
        try:
            return f"{self._endpoint}/{quote(bucket, safe='')}/{quote(key, safe='/')}"
        except UnicodeEncodeError:
            raise UnsafeKey(f"object key {key!r} is not valid Unicode") from None

    async def request(
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
        url, at = self.url(bucket, key), where(bucket, key)
        operation = "LIST" if key is None and method == "GET" and params is not None else method
        failure = ""
        for attempt in range(1, self._max_attempts + 1):
            self.counted[operation] += 1
            if attempt > 1:
                await asyncio.sleep(_backoff_delay(attempt - 1))
            try:
                async with AsyncExitStack() as stack:
                    sent_at = self.server_clock.local()
                    response = await stack.enter_async_context(
                        self._http.stream(
                            method, url, params=params, content=content, headers=headers, auth=self._auth
                        )
                    )
                    self.server_clock.observe(
                        response.headers.get("Date"), sent_at, self.server_clock.local()
                    )
                    if response.status_code in ok:
                        return await read(response, stack)
                    body = await read_prefix(response, ERROR_BODY_LIMIT)
                failure = retryable_or_raise(method, at, response.status_code, body)
            except _TRANSIENT as exc:
                failure = type(exc).__name__
            except HTTPX_ERRORS as exc:
                raise StorageError(f"{method} {at} failed: {type(exc).__name__}") from None
        raise StorageError(f"{method} {at} failed after {self._max_attempts} attempts: {failure}")

    async def send(
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

        return await self.request(
            method, bucket, key, whole_body, params=params, content=content, headers=headers, ok=ok
        )


def _backoff_delay(retry: int) -> float:
    """Seconds before retry number `retry` (1-based): from 0.2 s, capped at 2 s (see clients/retry.py)."""
    return backoff_delay(retry, base=_RETRY_BASE_S, cap=_RETRY_CAP_S)
