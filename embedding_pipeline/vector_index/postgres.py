"""The vector index: a document's rows in and out, reconcile's summary, the nearest neighbours of a
vector. One row per chunk, an HNSW index for cosine distance.

Rows are keyed by where their records live (output bucket, document, chunk) and carry the ETag of
the records object they were read from, so that drift from the bucket shows in one query
(`summary`). Every write of a document happens in one transaction under a lock on that document: a
search sees the old rows or the new ones, never a mix, and two writers of one document take turns.

The reads' SQL is built from their filters in queries.py. The table is made on first use
(schema.py), through the instance's pool (connections.py). Every method runs inside one boundary
(failures.py): whatever the driver or the network raise comes out as VectorIndexError, whose message
never holds the DSN or its password.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from embedding_pipeline.vector_index.connections import _POOL_SIZE, ConnectionPool
from embedding_pipeline.vector_index.keywords import fill_missing, keyword_columns
from embedding_pipeline.vector_index.queries import Hit, summary_query
from embedding_pipeline.vector_index.schema import decode_vector, drop_table, encode_vector
from embedding_pipeline.vector_index.search_sql import SearchSpec, candidates, hit_of, search_query

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

# Imported from here by the benchmarks and the Terraform test: the pool's size, the vector codec.
__all__ = ["COLUMNS", "_POOL_SIZE", "IndexRow", "VectorIndex", "decode_vector", "encode_vector"]

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
# What a write copies: the row, then its keyword form (keywords.py), made from its text.
WRITTEN_COLUMNS = (*COLUMNS, "lang_config", "fts")
IndexRow = tuple[str, str, int, str, str, str, str | None, str, str, str, int | None, int | None, str, Any]

_COPY_BATCH = 500  # rows per COPY: a document's rows are never all in memory at once
# HNSW candidates per query. bench/vector_index.py at 100k chunks: recall@10 0.90 at pgvector's 40,
# 0.98 at 100 (2 of 200 queries stranded), 0.99 at 200 with none stranded, for +0.4 ms at p95.
_EF_SEARCH = 200
_MAX_EF_SEARCH = 1000  # pgvector's own limit
_FILL_BATCH = 1000  # rows per transaction when the keyword column is filled afresh


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
        self.table = table  # a plain identifier (the setting's pattern): safe to place in SQL
        self.dimensions = dimensions
        self._pool = ConnectionPool(dsn, password=password, table=table, dimensions=dimensions, tls=tls)

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
            with self._pool.failures("writing the index"):
                async with self._pool.connection() as connection, connection.transaction():
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
        with self._pool.failures("removing from the index"):
            async with self._pool.connection() as connection, connection.transaction():
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
        query, arguments = summary_query(
            self.table, output_bucket, prefix=prefix, after=after, through=through, slash_first=slash_first
        )
        with self._pool.failures("reading the index"):
            if not create and not self._pool.opened and not await self._pool.table_exists():
                return {}
            async with self._pool.connection() as connection:
                found = await connection.fetch(query, *arguments)
        return {row["document"]: row["low"] if row["low"] == row["high"] else None for row in found}

    async def search(self, spec: SearchSpec) -> list[Hit]:
        """The `spec.top_k` chunks made with `spec.model` that match best by its mode (search_sql.py),
        optionally only documents under its prefix and chunks whose metadata holds its pairs."""
        query, arguments = search_query(self.table, spec)
        limit = candidates(spec.mode, spec.top_k, spec.limit)
        ef_search = min(_MAX_EF_SEARCH, max(_EF_SEARCH, 2 * limit))
        with self._pool.failures("searching the index"):
            async with self._pool.connection() as connection, connection.transaction():
                if spec.mode != "keyword":
                    await connection.execute(f"SET LOCAL hnsw.ef_search = {ef_search:d}")
                if spec.mode != "keyword" and self._pool.iterative_scan:
                    # The model is always a filter: while a migration re-embeds, the new model's
                    # rows are a few among the old, and a plain scan would drop most candidates.
                    await connection.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                found = await connection.fetch(query, *arguments)
        return [hit_of(row) for row in found]

    async def fill_keywords(self, batch: int = _FILL_BATCH, limit: int | None = None) -> dict[str, float]:
        """Fill the keyword column of rows that lack it (a table made before keyword search) from
        their own text, all of them or about `limit`: nothing is read from the bucket or embedded.
        Rows and seconds taken."""
        started = time.perf_counter()
        with self._pool.failures("filling the index's keyword column"):
            async with self._pool.connection() as connection:
                rows = await fill_missing(connection, self.table, batch=batch, limit=limit)
        return {"keywords_filled": rows, "seconds": round(time.perf_counter() - started, 1)}

    async def drop(self) -> None:
        """Drop the table (a rebuild after a change of dimensions): the next use creates it again."""
        await self.aclose()  # the next use makes the schema again
        with self._pool.failures("dropping the index"):
            connection = await self._pool.connect()  # not through the pool: its schema check would refuse
            try:
                await drop_table(connection, self.table)
            finally:
                await connection.close()

    async def aclose(self) -> None:
        with self._pool.failures("closing the index"):
            await self._pool.aclose()

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
        keywords = await keyword_columns(connection, [row[9] for row in batch])  # row[9]: the text
        records = [(*row, *columns) for row, columns in zip(batch, keywords, strict=True)]
        await connection.copy_records_to_table(self.table, records=records, columns=WRITTEN_COLUMNS)
        count = len(batch)
        batch.clear()
        return count


class _NoLongerCurrent(Exception):
    """Raised inside the write's transaction to roll it back."""
