"""Functional: the vector index over TLS, the server's certificate checked against the CA fetched
from VECTOR_DB_CA_URL (Managed PostgreSQL's "Internal Root CA" is in no default trust store).

The test PostgreSQL is built without TLS, so a proxy on loopback plays the server's TLS part: it
answers the client's SSLRequest as PostgreSQL does, completes the handshake with a certificate that
openssl made for 127.0.0.1, and passes the session on to the real server. The CA is served over HTTP
on loopback."""

from __future__ import annotations

import asyncio
import functools
import http.server
import ssl
import struct
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devstack.pgserver import PgServer
from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.runtime import Runtime
from tests.support import RuntimeFactory


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    # The extensions a CA must carry for Python 3.13's strict verification (VERIFY_X509_STRICT, on by
    # default there): without keyUsage it refuses "CA cert does not include key usage extension".
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=folder,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate it signed for 127.0.0.1, and another CA that signed nothing."""
    folder = tmp_path_factory.mktemp("tls")
    make_ca(folder, "ca")
    make_ca(folder, "stranger")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=folder)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=folder)  # fmt: skip
    return folder


_SSL_REQUEST = struct.pack("!ii", 8, 80877103)  # PostgreSQL's "let us speak TLS" message


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def tls_server(pg_server: PgServer, certificates: Path) -> AsyncIterator[str]:
    """A DSN whose host speaks TLS with the certificate the test CA signed, in front of the server."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates / "server.crt", certificates / "server.key")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await reader.readexactly(8) != _SSL_REQUEST:
            writer.close()  # a client that does not ask for TLS gets nothing
            return
        writer.write(b"S")
        await writer.drain()
        try:
            await writer.start_tls(context)
        except (ssl.SSLError, ConnectionError):
            writer.close()  # the client refused the certificate
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", pg_server.port)
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))

    proxy = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        yield pg_server.dsn.replace(f":{pg_server.port}/", f":{port}/") + "?sslmode=verify-full"
    finally:
        proxy.close()
        # Since Python 3.12.1 wait_closed() waits for every connection the server accepted, and the
        # runtime's pool (another fixture's, torn down after this one) still holds some: cut them.
        if hasattr(proxy, "abort_clients"):  # 3.13
            proxy.abort_clients()
        await asyncio.wait_for(proxy.wait_closed(), timeout=10)


@pytest.fixture(scope="module")
def ca_site(certificates: Path) -> Iterator[str]:
    """The certificates folder over HTTP on loopback, as Yandex serves its CA from Object Storage."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(certificates))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def runtime_with(make_runtime: RuntimeFactory, dsn: str, table: str, ca_url: str) -> Runtime:
    return make_runtime(vector_db_dsn=dsn, vector_db_ca_url=ca_url, vector_db_table=table)


async def test_the_index_trusts_the_ca_it_fetched(
    make_runtime: RuntimeFactory, tls_server: str, ca_site: str, index_table: str
) -> None:
    runtime = runtime_with(make_runtime, tls_server, index_table, f"{ca_site}/ca.pem")
    assert runtime.vector_index is not None
    assert await runtime.vector_index.summary("bucket") == {}
    # Without the fetched CA, the same server is not trusted: the system's store does not hold it.
    plain = make_runtime(vector_db_dsn=tls_server, vector_db_table=index_table)
    assert plain.vector_index is not None
    with pytest.raises(VectorIndexError):
        await plain.vector_index.summary("bucket")


async def test_a_certificate_from_another_ca_is_refused(
    make_runtime: RuntimeFactory, tls_server: str, ca_site: str, index_table: str
) -> None:
    runtime = runtime_with(make_runtime, tls_server, index_table, f"{ca_site}/stranger.pem")
    assert runtime.vector_index is not None
    with pytest.raises(VectorIndexError, match="CERTIFICATE_VERIFY_FAILED"):
        await runtime.vector_index.summary("bucket")


async def test_a_ca_that_cannot_be_fetched_is_an_index_error(
    make_runtime: RuntimeFactory, tls_server: str, ca_site: str, index_table: str
) -> None:
    runtime = runtime_with(make_runtime, tls_server, index_table, f"{ca_site}/missing.pem")
    assert runtime.vector_index is not None
    with pytest.raises(VectorIndexError, match=r"VECTOR_DB_CA_URL .*missing\.pem: HTTPStatusError"):
        await runtime.vector_index.summary("bucket")


async def test_the_ca_file_the_runtime_ships_is_read_before_any_download(
    make_runtime: RuntimeFactory, tls_server: str, certificates: Path, index_table: str
) -> None:
    """In the cloud the runtime holds the CA at VECTOR_DB_CA_FILE: no request to the URL is made
    (here it points nowhere, and the index still trusts the server)."""
    runtime = make_runtime(
        vector_db_dsn=tls_server,
        vector_db_table=index_table,
        vector_db_ca_url="http://127.0.0.1:9/nowhere.pem",
        vector_db_ca_file=str(certificates / "ca.pem"),
    )
    assert runtime.vector_index is not None
    assert await runtime.vector_index.summary("bucket") == {}


async def test_without_the_file_the_ca_is_downloaded(
    make_runtime: RuntimeFactory, tls_server: str, ca_site: str, certificates: Path, index_table: str
) -> None:
    runtime = make_runtime(
        vector_db_dsn=tls_server,
        vector_db_table=index_table,
        vector_db_ca_url=f"{ca_site}/ca.pem",
        vector_db_ca_file=str(certificates / "absent.crt"),
    )
    assert runtime.vector_index is not None
    assert await runtime.vector_index.summary("bucket") == {}
