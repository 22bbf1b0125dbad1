"""Keyword and hybrid search at 100k chunks, and the migration of a table made before them.

The 100k rows of bench/vector_index.py's clustered corpus (its vectors, loaded the same way: COPY,
then the HNSW index built), with texts as users' documents hold them: a paragraph of Russian and
English words (bench/common.py) carrying a ticket number `НЦ-NNNNN`, an error code
`ERR_<WORD>_<NNN>` and a contract `ABC-NNN/NN`, all distinct per chunk. The rows are copied in
without their keyword column, as a table of the old schema holds them; `VectorIndex.fill_keywords`
then fills it from the rows' own text (the migration: timed). Then 200 queries per mode, timed end
to end (embedding excluded), after 20 warm-ups: a code of one chunk with two of its words (the
code's chunk must come first by keyword and by hybrid: reported as `exact_first`), vectors from the
corpus's queries. Target: p95 <= 50 ms for hybrid.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import paragraphs
from bench.vector_index import DIMENSIONS, MODEL, QUERIES, WARM_UP, Corpus, load
from devstack.pgserver import start_pg_server, stop_pg_server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.vector_index.postgres import VectorIndex
from embedding_pipeline.vector_index.search_sql import MODES, SearchSpec

ROWS = 100_000
TABLE = "bench_hybrid_100k"


def texts(count: int) -> list[str]:
    base = paragraphs(2_000, seed=5)
    rng = random.Random(5)
    words = ["TIMEOUT", "RESET", "REFUSED", "DENIED", "OVERFLOW"]
    return [
        f"{base[row % len(base)]} Заявка НЦ-{row:05d}, ошибка ERR_{rng.choice(words)}_{row % 997:03d},"
        f" договор ABC-{row % 1000:03d}/{row // 1000:02d}."
        for row in range(count)
    ]


async def timed(index: VectorIndex, specs: list[SearchSpec], expected: list[int]) -> dict[str, Any]:
    for spec in specs[:WARM_UP]:
        await index.search(spec)
    latencies, first = [], 0
    for spec, row in zip(specs, expected, strict=True):
        started = time.perf_counter()
        hits = await index.search(spec)
        latencies.append((time.perf_counter() - started) * 1000)
        first += bool(hits) and hits[0].id == str(row)
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": round(cut[49], 2),
        "p95_ms": round(cut[94], 2),
        "max_ms": round(max(latencies), 2),
        "exact_first": round(first / len(specs), 3),
    }


async def main() -> dict[str, Any]:
    corpus = Corpus(seed=7)
    queries = corpus.queries(QUERIES)
    vectors = corpus.chunks(ROWS)
    written = texts(ROWS)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as workdir:
        server = start_pg_server(Path(workdir), durable=False)
        try:
            figures["load"] = await load(server, TABLE, vectors, written)
            index = VectorIndex(server.dsn, password=None, table=TABLE, dimensions=DIMENSIONS)
            try:
                figures["migration_fill"] = await index.fill_keywords()
                rng = random.Random(9)
                rows = [rng.randrange(ROWS) for _ in range(QUERIES)]
                for mode in MODES:
                    specs = []
                    for row, vector in zip(rows, queries, strict=True):
                        words = written[row].split()
                        text = f"{words[2]} {words[3]} НЦ-{row:05d}"
                        specs.append(
                            SearchSpec(
                                mode=mode,
                                text=text,
                                vector=None if mode == "keyword" else vector.tolist(),
                                top_k=10,
                                model=MODEL,
                            )
                        )
                    figures[mode] = await timed(index, specs, rows)
                common = [
                    SearchSpec(
                        mode="keyword", text="клиент договор выручка", vector=None, top_k=10, model=MODEL
                    )
                ]
                figures["keyword_common_words"] = await timed(index, common * QUERIES, [-1] * QUERIES)
            finally:
                await index.aclose()
        finally:
            stop_pg_server(server)
    return figures


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(asyncio.run(main()), indent=2, ensure_ascii=False))
