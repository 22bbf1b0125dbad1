"""Connections to the index's database: one small pool per instance, opened (and the schema made
with it) on first use, over TLS when a CA is configured, with the `vector` codec on every connection.

A failed opening is tried afresh by the next use. The DSN's password is registered as a secret
(redact.py) as soon as the pool is configured: no log line or error text shows it from then on.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from embedding_pipeline.redact import register_secret
from embedding_pipeline.vector_index.failures import (
    dsn_secrets,
    failures,
    refuse_misread_password,
    unusable_dsn,
)
from embedding_pipeline.vector_index.schema import (
    Schema,
    decode_vector,
    encode_vector,
    ensure_schema,
    passthrough,
    table_exists,
)

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_POOL_SIZE = 2  # an instance serves one request at a time; two cover a search beside an index write
_CONNECT_TIMEOUT_S = 10.0
_COMMAND_TIMEOUT_S = 60.0


class ConnectionPool:
    """The pool for one table of vectors of one length; nothing is opened until it is needed."""

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None,
        table: str,
        dimensions: int,
        tls: Callable[[], Awaitable[ssl.SSLContext]] | None = None,
    ) -> None:
        self.dsn = dsn
        self._password = password
        self._tls = tls  # the server's certificate checked against a CA of the operator's choosing
        self._table = table
        self._dimensions = dimensions
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()  # a batch's documents finish together: one pool, made once
        self.iterative_scan = False  # known once the schema is: pgvector 0.8 or later
        for secret in (password, *dsn_secrets(dsn)):
            register_secret(secret)

    @property
    def opened(self) -> bool:
        return self._pool is not None

    def failures(self, what: str) -> AbstractContextManager[None]:
        """Around any use: the driver's and the network's failures as VectorIndexError, redacted."""
        return failures(what, self.dsn)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        pool = await self._open()
        async with pool.acquire() as connection:
            yield connection

    async def connect(self) -> asyncpg.Connection:
        """One connection of its own, outside the pool (whose opening checks the schema)."""
        import asyncpg  # noqa: PLC0415 - only an instance with an index configured pays for it

        refuse_misread_password(self.dsn)
        context = await self._tls() if self._tls is not None else None
        try:
            return await asyncpg.connect(
                self.dsn,
                password=self._password,
                ssl=context,
                timeout=_CONNECT_TIMEOUT_S,
                command_timeout=_COMMAND_TIMEOUT_S,
            )
        except (ValueError, asyncpg.ClientConfigurationError) as exc:
            # A malformed DSN (a port that is no number, an unknown sslmode).
            raise unusable_dsn(exc, self.dsn) from None

    async def table_exists(self) -> bool:
        connection = await self.connect()
        try:
            return await table_exists(connection, self._table)
        finally:
            await connection.close()

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _open(self) -> asyncpg.Pool:
        """The pool, made (and the schema with it) on first use; a failed attempt is tried afresh."""
        if self._pool is not None:
            return self._pool
        async with self._opening:
            if self._pool is None:
                self._pool = await self._make_pool()
            return self._pool

    async def _make_pool(self) -> asyncpg.Pool:
        import asyncpg  # noqa: PLC0415 - only an instance with an index configured pays for it

        connection = await self.connect()
        try:
            schema: Schema = await ensure_schema(connection, self._table, self._dimensions)
        finally:
            await connection.close()
        self.iterative_scan = schema.iterative_scan

        async def register_vector(connection: Connection) -> None:
            await connection.set_type_codec(
                "vector",
                schema=schema.vector_namespace,
                encoder=encode_vector,
                decoder=decode_vector,
                format="binary",
            )
            # Made by the database's to_tsvector and copied back in unread (postgres.py).
            await connection.set_type_codec(
                "tsvector", schema="pg_catalog", encoder=passthrough, decoder=passthrough, format="binary"
            )

        return await asyncpg.create_pool(
            self.dsn,
            password=self._password,
            ssl=await self._tls() if self._tls is not None else None,
            min_size=0,
            max_size=_POOL_SIZE,
            timeout=_CONNECT_TIMEOUT_S,
            command_timeout=_COMMAND_TIMEOUT_S,
            init=register_vector,
        )
