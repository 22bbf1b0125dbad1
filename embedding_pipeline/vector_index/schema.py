"""The index's table in PostgreSQL: made on first use, checked against EMBEDDINGS_DIMENSIONS, and
pgvector's `vector` type in its binary form.

The `vector` extension is created if it is missing and this user may create it (in Managed
PostgreSQL, Terraform enables it on the database). Instances may start together: one advisory lock
makes the schema one at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.vector_index.failures import message_of

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_SCHEMA_LOCK = 0x656D6270  # one advisory lock for creating the schema: instances may start together


@dataclass(frozen=True, slots=True)
class Schema:
    """What the database the table lives in offers."""

    vector_namespace: str  # the schema pgvector's `vector` type is in
    iterative_scan: bool  # pgvector 0.8 keeps scanning when filters drop candidates


async def ensure_schema(connection: Connection, table: str, dimensions: int) -> Schema:
    """The extension, table and indexes, made if missing; refused if the table holds vectors of
    another length than `dimensions`."""
    import asyncpg  # noqa: PLC0415 - only an instance with an index configured pays for it

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
                    f"the server said: {message_of(exc)}"
                ) from None
        namespace, version = await _vector_extension(connection) or ("public", "0")
        vector_type = f"{_quote(namespace)}.vector"
        await connection.execute(
            f"""CREATE TABLE IF NOT EXISTS {table} (
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
                embedding {vector_type}({dimensions:d}) NOT NULL,
                indexed_at timestamptz NOT NULL DEFAULT now(),
                lang_config text,
                fts tsvector,
                PRIMARY KEY (output_bucket, document, chunk)
            )"""
        )
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_embedding ON {table}"
            f" USING hnsw (embedding {_quote(namespace)}.vector_cosine_ops)"
        )
        # Tables made before keyword search get its columns here; their rows' `fts` stays NULL (not
        # found by keyword, still by vector) until reconcile fills it a few thousand rows a page, or
        # `embedpipe reindex --keywords` all at once.
        # Checked first: ALTER TABLE takes an exclusive lock even when it has nothing to do.
        if not await _has_column(connection, table, "fts"):
            await connection.execute(
                f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS lang_config text,"
                " ADD COLUMN IF NOT EXISTS fts tsvector"
            )
        await connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_fts ON {table} USING gin (fts)")
        # The rows still to fill, found without a scan; empty (and free) once the table is filled.
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_fts_missing ON {table}"
            " (output_bucket, document, chunk) WHERE fts IS NULL"
        )
        # A model with few rows (a migration under way) is answered exactly, through this one:
        # the HNSW graph, made mostly of the other model's vectors, would strand its queries.
        await connection.execute(f"CREATE INDEX IF NOT EXISTS {table}_model ON {table} (model)")
        # A prefix filter that keeps few documents is answered exactly, through this index.
        await connection.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_document ON {table} (document text_pattern_ops)"
        )
        # Reconcile reads the index a page of documents at a time, in Object Storage's order.
        await connection.execute(
            f'CREATE INDEX IF NOT EXISTS {table}_pages ON {table} (output_bucket, document COLLATE "C")'
        )
        declared = await connection.fetchval(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = $1::regclass AND attname = 'embedding'",
            table,
        )
    if not str(declared).endswith(f"vector({dimensions})"):
        raise VectorIndexError(
            f"the index table {table} holds {declared} but EMBEDDINGS_DIMENSIONS="
            f"{dimensions}: rebuild it with `embedpipe reindex --recreate`"
        )
    return Schema(namespace, iterative_scan=_version(version) >= (0, 8))


def passthrough(data: bytes) -> bytes:
    """A `tsvector` as PostgreSQL's binary form: made by to_tsvector, copied in as it came."""
    return data


async def table_exists(connection: Connection, table: str) -> bool:
    return await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table) is True


async def drop_table(connection: Connection, table: str) -> None:
    await connection.execute(f"DROP TABLE IF EXISTS {table}")


async def _has_column(connection: Connection, table: str, column: str) -> bool:
    found = await connection.fetchval(
        "SELECT count(*) FROM pg_attribute"
        " WHERE attrelid = $1::regclass AND attname = $2 AND NOT attisdropped",
        table,
        column,
    )
    return bool(found)


def encode_vector(vector: Sequence[float]) -> bytes:
    """pgvector's binary form: dimensions and a reserved word (16 bits each), then float4s."""
    return struct.pack(f">HH{len(vector)}f", len(vector), 0, *vector)


def decode_vector(data: bytes) -> list[float]:
    dimensions = struct.unpack_from(">H", data)[0]
    return list(struct.unpack_from(f">{dimensions}f", data, 4))


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
