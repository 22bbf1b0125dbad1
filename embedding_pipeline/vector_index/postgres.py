"""The vector index in PostgreSQL: one row per chunk, an HNSW index for cosine distance.

The table is created on first use, with the `vector` extension if it is missing and this user may
create it (in Managed PostgreSQL, Terraform enables it on the database). Rows are keyed by where
their records live (output bucket, document, chunk) and carry the ETag of the records object they
were read from, so that drift from the bucket shows in one query (`summary`). Every write of a
document happens in one transaction under a lock on that document: a search sees the old rows or
the new ones, never a mix, and two writers of one document take turns.

Failures come out as VectorIndexError, whose message never holds the DSN or its password.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.logs import get_logger

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

log = get_logger()

COLUMNS = (
    "output_bucket",  # where the records object lives: rows mirror it
    "document",  # the source key, or `_inline/{id}`
    "chunk",
    "id",  # the record's id, "{K}#{n}"
    "source_bucket",
    "source_key",
    "source_etag",
    "records_etag",  # the version of the records object the rows were read from
    "model",
    "text",
    "start_offset",
    "end_offset",
    "metadata",
    "embedding",
)
IndexRow = tuple[str, str, int, str, str, str, str | None, str, str, str, int | None, int | None, str, Any]

_COPY_BATCH = 500  # rows per COPY: a document's rows are never all in memory at once
# HNSW candidates per query. bench/vector_index.py at 100k chunks: recall@10 0.90 at pgvector's 40,
# 0.98 at 100 (2 of 200 queries stranded), 0.99 at 200 with none stranded, for +0.4 ms at p95.
_EF_SEARCH = 200
_MAX_EF_SEARCH = 1000  # pgvector's own limit
_POOL_SIZE = 2  # an instance serves one request at a time; two cover a search beside an index write
_CONNECT_TIMEOUT_S = 10.0
_COMMAND_TIMEOUT_S = 60.0
_SCHEMA_LOCK = 0x656D6270  # one advisory lock for creating the schema: instances may start together


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # cosine similarity: 1 is the same direction
    text: str
    source_bucket: str
    source_key: str
    source_etag: str | None
    document: str
    chunk: int
    start: int | None
    end: int | None
    metadata: dict[str, Any]
    model: str


class VectorIndex:
    """One table of chunks and their vectors; the connection pool opens on first use."""

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None,
        table: str,
        dimensions: int,
        tls: Callable[[], Awaitable[ssl.SSLContext]] | None = None,
    ) -> None:
        self._dsn = dsn
        self._password = password
        self._tls = tls  # the server's certificate checked against a CA of the operator's choosing
        self.table = table  # a plain identifier (the setting's pattern): safe to place in SQL
        self.dimensions = dimensions
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()  # a batch's documents finish together: one pool, made once
        self._iterative_scan = False  # pgvector 0.8 keeps scanning when filters drop candidates

    async def replace(
        self,
        output_bucket: str,
        document: str,
        rows: AsyncIterator[IndexRow],
        *,
        still_current: Callable[[], Awaitable[bool]],
    ) -> int | None:
        """Replace the document's rows with `rows`, in one transaction; the number written, or None
        when `still_current` says, just before the commit, that a newer version has taken over
        (nothing is changed then: that version's writer, or reconcile, writes it)."""
        try:
            with _failures("writing the index"):
                async with self._connection() as connection, connection.transaction():
                    return await self._replace_rows(connection, output_bucket, document, rows, still_current)
        except _NoLongerCurrent:
            return None

    async def _replace_rows(
        self,
        connection: Connection,
        output_bucket: str,
        document: str,
        rows: AsyncIterator[IndexRow],
        still_current: Callable[[], Awaitable[bool]],
    ) -> int:
        await self._delete_document(connection, output_bucket, document)
        written = 0
        batch: list[IndexRow] = []
        async for row in rows:
            batch.append(row)
            if len(batch) >= _COPY_BATCH:
                written += await self._copy(connection, batch)
        if batch:
            written += await self._copy(connection, batch)
        if not await still_current():
            raise _NoLongerCurrent  # out of the transaction's block: it rolls back
        return written

    async def remove(self, output_bucket: str, document: str) -> int:
        """Remove every row of the document; how many there were."""
        with _failures("removing from the index"):
            async with self._connection() as connection, connection.transaction():
                return await self._delete_document(connection, output_bucket, document)

    async def summary(
        self,
        output_bucket: str,
        *,
        prefix: str = "",
        after: str | None = None,
        through: str | None = None,
        slash_first: bool = False,
        create: bool = True,
    ) -> dict[str, str | None]:
        """The documents the index holds for this output bucket (those under `prefix`, after
        `after` and up to `through`: one page of reconcile, in UTF-8 byte order, or with `/` before
        every other character when the bucket's server lists folders first), with the records ETag
        its rows were read from (None: a mix, which is drift). `create=False` (a dry run) makes
        nothing: no table yet is an empty index."""
        # Keys hold no control characters: chr(1) in place of "/" sorts folders first.
        ordered = "replace(document, '/', chr(1))" if slash_first else "document"
        bound = "replace(${n}, '/', chr(1))" if slash_first else "${n}"
        where, arguments = ["output_bucket = $1"], [output_bucket]
        for condition, value in (
            ("document COLLATE \"C\" LIKE ${n} ESCAPE '\\'", _like_prefix(prefix) if prefix else None),
            (f'{ordered} COLLATE "C" > {bound}', after),
            (f'{ordered} COLLATE "C" <= {bound}', through),
        ):
            if value is not None:
                arguments.append(value)
                where.append(condition.format(n=len(arguments)))
        with _failures("reading the index"):
            if not create and self._pool is None and not await self._table_exists():
                return {}
            async with self._connection() as connection:
                found = await connection.fetch(
                    f"SELECT document, min(records_etag) AS low, max(records_etag) AS high"  # noqa: S608
                    f" FROM {self.table} WHERE {' AND '.join(where)} GROUP BY document",
                    *arguments,
                )
        return {row["document"]: row["low"] if row["low"] == row["high"] else None for row in found}

    async def search(
        self,
        vector: Sequence[float],
        *,
        top_k: int,
        model: str,
        prefix: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        """The `top_k` chunks nearest to `vector` (cosine) among those made with `model`, optionally
        only documents under `prefix` and chunks whose metadata holds every pair of `metadata`."""
        where = ["model = $2"]
        arguments: list[Any] = [vector, model]
        if prefix:
            arguments.append(_like_prefix(prefix))
            where.append(f"document LIKE ${len(arguments)} ESCAPE '\\'")
        if metadata:
            arguments.append(json.dumps(metadata, ensure_ascii=False))
            where.append(f"metadata @> ${len(arguments)}::jsonb")
        arguments.append(top_k)
        # Materialized, then ordered again: with iterative scans the index may hand rows back
        # slightly out of order (pgvector's "relaxed order").
        query = (
            f"WITH nearest AS MATERIALIZED (SELECT id, embedding <=> $1 AS distance, text,"  # noqa: S608
            f" source_bucket, source_key, source_etag, document, chunk, start_offset, end_offset,"
            f" metadata::text AS metadata, model FROM {self.table} WHERE {' AND '.join(where)}"
            f" ORDER BY distance LIMIT ${len(arguments)}) SELECT * FROM nearest ORDER BY distance"
        )
        ef_search = min(_MAX_EF_SEARCH, max(_EF_SEARCH, 2 * top_k))
        with _failures("searching the index"):
            async with self._connection() as connection, connection.transaction():
                await connection.execute(f"SET LOCAL hnsw.ef_search = {ef_search:d}")
                if self._iterative_scan:
                    # The model is always a filter: while a migration re-embeds, the new model's
                    # rows are a few among the old, and a plain scan would drop most candidates.
                    await connection.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                found = await connection.fetch(query, *arguments)
        return [
            Hit(
                id=row["id"],
                score=round(1.0 - float(row["distance"]), 6),
                text=row["text"],
                source_bucket=row["source_bucket"],
                source_key=row["source_key"],
                source_etag=row["source_etag"],
                document=row["document"],
                chunk=row["chunk"],
                start=row["start_offset"],
                end=row["end_offset"],
                metadata=json.loads(row["metadata"]),
                model=row["model"],
            )
            for row in found
        ]

    async def drop(self) -> None:
        """Drop the table (a rebuild after a change of dimensions): the next use creates it again."""
        await self.aclose()  # the next use makes the schema again
        with _failures("dropping the index"):
            connection = await self._connect()  # not through the pool: its schema check would refuse
            try:
                await connection.execute(f"DROP TABLE IF EXISTS {self.table}")
            finally:
                await connection.close()

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        pool = await self._open()
        async with pool.acquire() as connection:
            yield connection

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

        connection = await self._connect()
        try:
            schema = await self._ensure_schema(connection)
        finally:
            await connection.close()

        async def register_vector(connection: Connection) -> None:
            await connection.set_type_codec(
                "vector", schema=schema, encoder=encode_vector, decoder=decode_vector, format="binary"
            )

        return await asyncpg.create_pool(
            self._dsn,
            password=self._password,
            ssl=await self._tls() if self._tls is not None else None,
            min_size=0,
            max_size=_POOL_SIZE,
            timeout=_CONNECT_TIMEOUT_S,
            command_timeout=_COMMAND_TIMEOUT_S,
            init=register_vector,
        )

    async def _connect(self) -> asyncpg.Connection:
        import asyncpg  # noqa: PLC0415 - only an instance with an index configured pays for it

        context = await self._tls() if self._tls is not None else None
        try:
            return await asyncpg.connect(
                self._dsn,
                password=self._password,
                ssl=context,
                timeout=_CONNECT_TIMEOUT_S,
                command_timeout=_COMMAND_TIMEOUT_S,
            )
        except (ValueError, asyncpg.ClientConfigurationError) as exc:
            # A malformed DSN (a port that is no number, an unknown sslmode): the message names the
            # part, never the password.
            raise VectorIndexError(f"VECTOR_DB_DSN is not usable: {_message(exc)}") from None

    async def _table_exists(self) -> bool:
        connection = await self._connect()
        try:
            return await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", self.table) is True
        finally:
            await connection.close()

    async def _ensure_schema(self, connection: Connection) -> str:
        """The extension, table and indexes, made if missing; the schema the `vector` type is in."""
        import asyncpg  # noqa: PLC0415

        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            if await _vector_extension(connection) is None:
                try:
                    async with connection.transaction():
                        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except asyncpg.PostgresError as exc:
                    # No privilege (an ordinary user), or a managed service that enables extensions
                    # through its own API only (Yandex's says "extension is not available").
                    raise VectorIndexError(
                        "the `vector` extension is not enabled in the database, and this user may not "
                        "create it: enable it (Terraform does, on the database it creates); "
                        f"the server said: {_message(exc)}"
                    ) from None
            schema, version = await _vector_extension(connection) or ("public", "0")
            self._iterative_scan = _version(version) >= (0, 8)
            vector_type = f"{_quote(schema)}.vector"
            await connection.execute(
                f"""CREATE TABLE IF NOT EXISTS {self.table} (
                    output_bucket text NOT NULL,
                    document text NOT NULL,
                    chunk integer NOT NULL,
                    id text NOT NULL,
                    source_bucket text NOT NULL,
                    source_key text NOT NULL,
                    source_etag text,
                    records_etag text NOT NULL,
                    model text NOT NULL,
                    text text NOT NULL,
                    start_offset integer,
                    end_offset integer,
                    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb,
                    embedding {vector_type}({self.dimensions:d}) NOT NULL,
                    indexed_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (output_bucket, document, chunk)
                )"""
            )
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_embedding ON {self.table}"
                f" USING hnsw (embedding {_quote(schema)}.vector_cosine_ops)"
            )
            # A model with few rows (a migration under way) is answered exactly, through this one:
            # the HNSW graph, made mostly of the other model's vectors, would strand its queries.
            await connection.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_model ON {self.table} (model)")
            # A prefix filter that keeps few documents is answered exactly, through this index.
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_document ON {self.table}"
                " (document text_pattern_ops)"
            )
            # Reconcile reads the index a page of documents at a time, in Object Storage's order.
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {self.table}_pages ON {self.table}"
                ' (output_bucket, document COLLATE "C")'
            )
            declared = await connection.fetchval(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = $1::regclass AND attname = 'embedding'",
                self.table,
            )
        if not str(declared).endswith(f"vector({self.dimensions})"):
            raise VectorIndexError(
                f"the index table {self.table} holds {declared} but EMBEDDINGS_DIMENSIONS="
                f"{self.dimensions}: rebuild it with `embedpipe reindex --recreate`"
            )
        return schema

    async def _delete_document(self, connection: Connection, output_bucket: str, document: str) -> int:
        """Delete the document's rows, inside the caller's transaction and under a lock on the
        document until it ends (two writers of one document take turns); how many there were."""
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{output_bucket}\n{document}"
        )
        status = await connection.execute(
            f"DELETE FROM {self.table} WHERE output_bucket = $1 AND document = $2",  # noqa: S608
            output_bucket,
            document,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def _copy(self, connection: Connection, batch: list[IndexRow]) -> int:
        await connection.copy_records_to_table(self.table, records=batch, columns=COLUMNS)
        count = len(batch)
        batch.clear()
        return count


class _NoLongerCurrent(Exception):
    """Raised inside the write's transaction to roll it back."""


def encode_vector(vector: Sequence[float]) -> bytes:
    """pgvector's binary form: dimensions and a reserved word (16 bits each), then float4s."""
    return struct.pack(f">HH{len(vector)}f", len(vector), 0, *vector)


def decode_vector(data: bytes) -> list[float]:
    dimensions = struct.unpack_from(">H", data)[0]
    return list(struct.unpack_from(f">{dimensions}f", data, 4))


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(char for char in part if char.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


async def _vector_extension(connection: Connection) -> tuple[str, str] | None:
    """The schema of pgvector's `vector` type and the extension's version, or None if it is not there.
    Found by its type, whatever name a managed service installed the extension under."""
    found = await connection.fetchrow(
        "SELECT n.nspname AS schema, coalesce(e.extversion, '0') AS version FROM pg_type t"
        " JOIN pg_namespace n ON n.oid = t.typnamespace"
        " LEFT JOIN pg_depend d ON d.objid = t.oid AND d.deptype = 'e'"
        " LEFT JOIN pg_extension e ON e.oid = d.refobjid"
        " WHERE t.typname = 'vector' AND t.typtype = 'b' ORDER BY e.extname = 'vector' DESC LIMIT 1"
    )
    return None if found is None else (found["schema"], found["version"])


@contextmanager
def _failures(what: str) -> Iterator[None]:
    """Every failure of the database or the network as VectorIndexError."""
    try:
        yield
    except VectorIndexError:
        raise
    except Exception as exc:
        if not _is_database_failure(exc):
            raise
        log.debug("vector_index_failed", action=what, error=type(exc).__name__)
        raise VectorIndexError(f"{what}: {type(exc).__name__}: {_message(exc)}") from None


def _is_database_failure(exc: Exception) -> bool:
    import asyncpg  # noqa: PLC0415 - loaded already: only a pool that exists can fail

    return isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError | OSError | TimeoutError)


def _message(exc: Exception) -> str:
    # asyncpg's messages name the user and database at most, never the password; kept short anyway.
    return " ".join(str(exc).split())[:300]
