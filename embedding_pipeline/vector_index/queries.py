"""The SQL of the index's two reads, built from their filters: reconcile's summary of one page of
documents, and the nearest neighbours of a vector; and a found row as a `Hit`.

Values travel as query arguments; only the table's name (a plain identifier, by the setting's
pattern) and argument numbers are placed in the text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncpg


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


def summary_query(
    table: str,
    output_bucket: str,
    *,
    prefix: str,
    after: str | None,
    through: str | None,
    slash_first: bool,
) -> tuple[str, list[str]]:
    """Each document of the page with its rows' lowest and highest records ETag: the page is under
    `prefix`, after `after` and up to `through`, in UTF-8 byte order, or with `/` before every other
    character when the bucket's server lists folders first."""
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
    query = (
        f"SELECT document, min(records_etag) AS low, max(records_etag) AS high"  # noqa: S608
        f" FROM {table} WHERE {' AND '.join(where)} GROUP BY document"
    )
    return query, arguments


def search_query(
    table: str,
    vector: Sequence[float],
    *,
    top_k: int,
    model: str,
    prefix: str | None,
    metadata: Mapping[str, Any] | None,
) -> tuple[str, list[Any]]:
    """The `top_k` rows nearest to `vector` among those of `model`, optionally only documents under
    `prefix` and rows whose metadata holds every pair of `metadata`."""
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
        f" metadata::text AS metadata, model FROM {table} WHERE {' AND '.join(where)}"
        f" ORDER BY distance LIMIT ${len(arguments)}) SELECT * FROM nearest ORDER BY distance"
    )
    return query, arguments


def hit_of(row: asyncpg.Record) -> Hit:
    """A row of `search_query`'s as a hit."""
    return Hit(
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


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
