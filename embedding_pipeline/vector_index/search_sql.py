"""A search's SQL, in one round trip: the vector side (HNSW, cosine), the keyword side (the GIN index
over each chunk's `fts`, keywords.py), or both fused by reciprocal rank fusion; and a row as a `Hit`.

Each side keeps its own candidates (`limit` rows, ranked 1, 2, ... by its own order); hybrid's score
is sum(1 / (rrf_k + rank)) over the sides that found the row, so a row both sides found outranks
one only one side ranks as high. `score` is the cosine similarity in `vector` mode, `ts_rank_cd` in
`keyword` mode, the fused score in `hybrid`.

Both sides apply the same filters, built once by `filters` (the model, the prefix, and the metadata
through `metadata_condition`, the one place a compiled filter expression would replace). Values
travel as arguments; only the table's name and argument numbers are placed in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from embedding_pipeline.vector_index.filters import compile_filter, parse_filter
from embedding_pipeline.vector_index.keywords import any_tsquery_sql, fold, query_terms, row_tsquery_sql
from embedding_pipeline.vector_index.queries import Hit, like_prefix

if TYPE_CHECKING:
    import asyncpg

Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")
_KEY = "output_bucket, document, chunk"
KEYWORD_CAP = 2000  # matching rows a keyword tier ranks at most (see _keyword_tier)
_WORD = re.compile(r"\w")


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What to search for: `vector` is None in keyword mode (the query is never embedded then)."""

    mode: Mode
    text: str
    vector: Sequence[float] | None
    top_k: int
    model: str
    prefix: str | None = None
    metadata: Mapping[str, Any] | None = None
    limit: int = 40  # candidates each side keeps in hybrid mode
    rrf_k: int = 60


def candidates(mode: Mode, top_k: int, pool: int) -> int:
    """How many rows each side keeps: `top_k` alone, or the fusion's pool, max(4 top_k, pool)."""
    return top_k if mode != "hybrid" else max(4 * top_k, pool)


def metadata_condition(metadata: Mapping[str, Any] | None, arguments: list[Any]) -> str | None:
    """Chunks whose metadata matches the filter `metadata` (equality as jsonb containment, and the
    operators of filters.py), its values appended to `arguments`; None: no condition. The filter was
    read by the caller already (400 over HTTP); reading it again here costs microseconds."""
    if not metadata:
        return None
    return compile_filter(parse_filter(metadata), arguments)


def filters(spec: SearchSpec, arguments: list[Any]) -> str:
    arguments.append(spec.model)
    where = [f"model = ${len(arguments)}"]
    if spec.prefix:
        arguments.append(like_prefix(spec.prefix))
        where.append(f"document LIKE ${len(arguments)} ESCAPE '\\'")
    condition = metadata_condition(spec.metadata, arguments)
    if condition is not None:
        where.append(condition)
    return " AND ".join(where)


def search_query(table: str, spec: SearchSpec) -> tuple[str, list[Any]]:
    arguments: list[Any] = []
    where = filters(spec, arguments)
    arguments.append(candidates(spec.mode, spec.top_k, spec.limit))
    limit = f"${len(arguments)}"
    sides = []
    if spec.mode != "keyword":
        arguments.append(spec.vector)
        # Materialized, then ranked in order: with iterative scans the index may hand rows back
        # slightly out of order (pgvector's "relaxed order").
        sides.append(
            f"vector_side AS MATERIALIZED (SELECT {_KEY}, embedding <=> ${len(arguments)} AS distance"  # noqa: S608
            f" FROM {table} WHERE {where} ORDER BY distance LIMIT {limit}),"
            " vector_ranked AS (SELECT *, row_number() OVER (ORDER BY distance, document, chunk)"
            " AS vector_rank FROM vector_side)"
        )
    if spec.mode != "vector":
        words, code_list = query_terms(fold(spec.text))
        # Tiers, best first: a chunk holding one of the query's codes; one holding every word; one
        # holding any word. Hybrid's keyword side keeps the first two, what a keyword index is sure
        # of: a chunk sharing one word of a paraphrase is noise beside the vector side's answer
        # (measured: bench/retrieval.py). Keyword mode has no other side and keeps all three.
        tiers = []
        if code_list:
            arguments.append(code_list)
            tiers.append(_keyword_tier(table, where, limit, f"${len(arguments)}::tsquery", tier=0))
        if _WORD.search(words):
            arguments.append(words)
            text = len(arguments)
            tiers.append(_keyword_tier(table, where, limit, text, tier=1))
            if spec.mode == "keyword":
                tiers.append(_keyword_tier(table, where, limit, text, tier=2))
        nothing = f"(SELECT {_KEY}, 0 AS tier, 0.0::real AS rank FROM {table} WHERE false)"  # noqa: S608
        found = " UNION ALL ".join(tiers) or nothing
        sides.append(
            f"keyword_side AS (SELECT DISTINCT ON ({_KEY}) {_KEY}, tier, rank FROM"  # noqa: S608
            f" ({found}) found ORDER BY {_KEY}, tier),"
            f" keyword_ranked AS (SELECT {_KEY}, (2 - tier) + rank AS keyword_score, row_number() OVER"
            f" (ORDER BY tier, rank DESC, document, chunk) AS keyword_rank FROM keyword_side"
            f" ORDER BY keyword_rank LIMIT {limit})"
        )
    arguments.append(spec.top_k)
    query = f"WITH {', '.join(sides)} {_fused(table, spec, len(arguments))}"
    return query, arguments


def _keyword_tier(table: str, where: str, limit: str, text: int | str, *, tier: int) -> str:
    """One tier's candidates, ranked by `ts_rank_cd` normalised to [0, 1). Tier 0: `text` is the
    codes' tsquery (the same in every configuration: codes are indexed as written); tiers 1 and 2:
    the argument number of the query's words, every one or any one, in each row's configuration. At
    most KEYWORD_CAP matching rows are ranked: words so common that more rows hold them say little
    about any one, and ranking every match would cost a scan of the table."""
    if isinstance(text, str):
        matches = found = text
    else:
        matches = row_tsquery_sql(text, every_word=tier == 1)
        found = any_tsquery_sql(text, every_word=tier == 1)
    return (
        f"(SELECT {_KEY}, {tier:d} AS tier, ts_rank_cd(fts, {matches}, 32) AS rank FROM"  # noqa: S608
        f" (SELECT {_KEY}, fts, lang_config FROM {table} WHERE fts @@ {found} AND {where}"
        f" LIMIT {KEYWORD_CAP:d}) candidate WHERE fts @@ {matches} ORDER BY rank DESC, document, chunk"
        f" LIMIT {limit})"
    )


def _fused(table: str, spec: SearchSpec, top_k: int) -> str:
    if spec.mode == "vector":
        found = "SELECT *, NULL::real AS keyword_score, NULL::bigint AS keyword_rank, 1 - distance AS score"
        found += " FROM vector_ranked"
    elif spec.mode == "keyword":
        found = "SELECT *, NULL::float8 AS distance, NULL::bigint AS vector_rank, keyword_score AS score"
        found += " FROM keyword_ranked"
    else:
        k = int(spec.rrf_k)
        found = (
            f"SELECT {_KEY}, distance, vector_rank, keyword_score, keyword_rank,"  # noqa: S608
            f" coalesce(1.0 / ({k} + vector_rank), 0) + coalesce(1.0 / ({k} + keyword_rank), 0) AS score"
            f" FROM vector_ranked FULL JOIN keyword_ranked USING ({_KEY})"
        )
    # On a tie, a chunk holding one of the query's codes (keyword tier 0: keyword_score >= 2) first:
    # first on one side each, the code's chunk and the vector side's nearest tie at 1 / (k + 1).
    code_first = "coalesce(keyword_score >= 2, false) DESC"
    order = f"score DESC, {code_first}, vector_rank NULLS LAST, keyword_rank NULLS LAST, document, chunk"
    return (
        f"SELECT t.id, t.text, t.source_bucket, t.source_key, t.source_etag, t.document, t.chunk,"  # noqa: S608
        f" t.start_offset, t.end_offset, t.metadata::text AS metadata, t.model, f.distance, f.vector_rank,"
        f" f.keyword_rank, f.score FROM (SELECT * FROM ({found}) fused ORDER BY {order} LIMIT ${top_k}) f"
        f" JOIN {table} t USING ({_KEY}) ORDER BY {order}"
    )


def hit_of(row: asyncpg.Record) -> Hit:
    """A row of `search_query`'s as a hit."""
    distance = row["distance"]
    return Hit(
        id=row["id"],
        score=round(float(row["score"]), 6),
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
        vector_rank=row["vector_rank"],
        keyword_rank=row["keyword_rank"],
        vector_score=None if distance is None else round(1.0 - float(distance), 6),
    )
