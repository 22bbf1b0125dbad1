"""Pytest fixtures around a real SeaweedFS S3 server on loopback (devstack/s3server.py starts it)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from devstack.s3server import S3Server, log_tail, start_s3_server, stop_s3_server, wait_for_port
from embedding_pipeline.storage import ObjectStorage, sigv4_auth

__all__ = ["S3Server", "s3_bucket", "s3_server", "storage"]

_READY_TIMEOUT_S = 30.0


def _wait_for_signed_put(server: S3Server) -> None:
    """Ready means a signed write succeeds, not that the port is open."""
    auth = sigv4_auth(server.access_key, server.secret_key, server.region)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last = ""
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            try:
                created = http.put(f"{server.endpoint}/readiness", auth=auth)
                if created.status_code in (200, 409):
                    written = http.put(f"{server.endpoint}/readiness/probe", content=b"ok", auth=auth)
                    if written.status_code == 200:
                        return
                    last = f"PUT object answered {written.status_code}"
                else:
                    last = f"PUT bucket answered {created.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
    raise RuntimeError(f"SeaweedFS never accepted a signed PUT ({last}):\n{log_tail(server)}")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    workdir: Path = tmp_path_factory.mktemp("seaweedfs")
    server = start_s3_server(workdir)
    try:
        wait_for_port(server)
        _wait_for_signed_put(server)
        yield server
    finally:
        stop_s3_server(server)
        assert server.process.poll() is not None, "weed mini is still running"


@pytest.fixture
async def storage(s3_server: S3Server) -> AsyncIterator[ObjectStorage]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield ObjectStorage(
            http, s3_server.endpoint, sigv4_auth(s3_server.access_key, s3_server.secret_key, s3_server.region)
        )


@pytest.fixture
async def s3_bucket(storage: ObjectStorage) -> str:
    name = f"test-{uuid.uuid4().hex[:16]}"
    await storage.create_bucket(name)
    return name
