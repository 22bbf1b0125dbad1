"""The function's HTTP API served over real HTTP on loopback (devstack's FunctionGateway), as the
platform would call it directly, for clients that speak HTTP: openai, LangChain, LlamaIndex.

Requests arrive on the gateway's threads; each invocation runs on the test's event loop, so a test
calls the gateway from another thread (`asyncio.to_thread`) to leave that loop free.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from devstack.context import LocalContext
from devstack.http_gateway import FunctionGateway
from embedding_pipeline.runtime import Runtime
from handlers import dispatch


@asynccontextmanager
async def served(runtime: Runtime, *, timeout_s: float = 60.0) -> AsyncIterator[str]:
    """The gateway's URL; each invocation gets a context with `timeout_s` to work."""
    loop = asyncio.get_running_loop()
    lock = threading.Lock()  # an instance serves one request at a time

    def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
        with lock:
            invocation = dispatch(runtime, event, LocalContext(timeout_s=timeout_s))
            return asyncio.run_coroutine_threadsafe(invocation, loop).result()

    with FunctionGateway(handler) as gateway:
        yield gateway.url


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection and no name lookup beyond loopback for the rest of the test: a library that
    reaches for the internet (tiktoken fetching its vocabulary) fails as it would offline."""
    connect, lookup = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in _LOOPBACK:
            raise OSError(f"tests reach loopback only, not {address[0]}")
        connect(self, address)

    def guarded_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (*_LOOPBACK, "localhost", None):
            raise socket.gaierror(f"tests reach loopback only, not {host}")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_lookup)


_LOOPBACK = ("127.0.0.1", "::1")
