"""Reconcile's summary of one page of documents, as SQL built from its filters; a search's hit (its
SQL is search_sql.py's).

Values travel as query arguments; only the table's name (a plain identifier, by the setting's
pattern) and argument numbers are placed in the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # by mode: cosine similarity (vector), text rank (keyword), fused RRF score (hybrid)
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
    vector_rank: int | None = None  # its place among the vector side's candidates; None: not among them
    keyword_rank: int | None = None  # the same on the keyword side
    vector_score: float | None = None  # cosine similarity, when the vector side found it


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
        ("document COLLATE \"C\" LIKE ${n} ESCAPE '\\'", like_prefix(prefix) if prefix else None),
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


def like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
