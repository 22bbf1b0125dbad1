"""The vector index: recall and latency of its searches, and what writing it costs the pipeline.

Search, at 10k and 100k chunks of 256 dimensions in a real PostgreSQL 18 with pgvector 0.8
(devstack/pgserver.py, fsync off: nothing here survives the run). The table is made by VectorIndex
itself; for the load its HNSW index is dropped, the rows copied in, and the index built again from
the definition VectorIndex gave it (build time reported), then ANALYZE, as autovacuum would.
Queries go through `VectorIndex.search(top_k=10)` in vector mode, timed end to end (asyncpg round
trip included, embedding excluded) after warm-up queries; recall@10 is against exact cosine search by numpy,
with a tie tolerance of 1e-6. Targets: recall@10 >= 0.95 and p95 <= 50 ms at 100k chunks, at the
product's ef_search (200); pgvector's default (40), 100 and 400 beside it.

The vectors resemble text embeddings rather than noise: a seeded two-level mixture, 100 topic
centres uniform on the unit sphere, 10 subtopic centres around each (unit(topic + 0.07 g)), each
chunk unit(subtopic + 0.06 g), g a standard normal vector; a document's 50 chunks keep to its own
topic 8 times in 10. Queries are drawn the same way and are not in the table; the figures give the
mean cosine of a query's 1st, 10th and 100th neighbours. Uniform random vectors, the adversarial
worst case for HNSW and unlike text, are measured at 10k as a labelled extra line. At 100k also: a
filtered search (a prefix keeping 1 document in 10), with the index that served it, and searches
for a second model holding 2% of the rows, as while reconcile embeds again after a change of model.

Writes: the pipeline embeds a 300-chunk document at the quota (emulator at 10 rps, 50 ms latency)
without the index and with it (a fresh table); target: chunks/s unchanged within noise. Then the
write alone, into the table of 100k rows: `index.replace` of 3,000 synthetic rows, and
`write_document` of a 3,000-chunk document read back from the bucket, in chunks/s.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

from bench.common import Clock, bucket_storage, paragraphs, runtime_for, s3_server
from devstack.context import LocalContext
from devstack.pgserver import PgServer, start_pg_server, stop_pg_server
from devstack.s3server import S3Server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.store import BucketOutputs
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.vector_index import postgres
from embedding_pipeline.vector_index.follow import write_document
from embedding_pipeline.vector_index.postgres import (
    COLUMNS,
    IndexRow,
    VectorIndex,
    decode_vector,
    encode_vector,
)
from embedding_pipeline.vector_index.search_sql import SearchSpec
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

Vectors = NDArray[np.float32]

MODEL = "emb://b1gbench/text-search-doc/latest"
OTHER_MODEL = "emb://b1gbench/text-search-doc/rc"
DIMENSIONS = 256
TOPICS, SUBTOPICS = 100, 10
CHUNKS_PER_DOCUMENT = 50
QUERIES = 200
WARM_UP = 20
EF_SEARCH = (40, 100, 200, 400)
PRODUCT_EF_SEARCH = postgres._EF_SEARCH
LARGE_DOCUMENT = 3_000
PIPELINE_CHUNKS = 300


class Corpus:
    """The seeded generator of chunks and queries: topics, subtopics, Gaussian spread."""

    def __init__(self, seed: int) -> None:
        self.random = np.random.default_rng(seed)
        topics = _unit(self._normal(TOPICS))
        self.subtopics = _unit(np.repeat(topics, SUBTOPICS, axis=0) + 0.07 * self._normal(TOPICS * SUBTOPICS))

    def chunks(self, count: int) -> Vectors:
        documents = -(-count // CHUNKS_PER_DOCUMENT)
        home = np.repeat(self.random.integers(0, TOPICS, documents), CHUNKS_PER_DOCUMENT)[:count]
        topic = np.where(self.random.random(count) < 0.8, home, self.random.integers(0, TOPICS, count))
        return self._around(topic * SUBTOPICS + self.random.integers(0, SUBTOPICS, count))

    def queries(self, count: int) -> Vectors:
        return self._around(self.random.integers(0, TOPICS * SUBTOPICS, count))

    def _around(self, subtopic: NDArray[np.int64]) -> Vectors:
        return _unit(self.subtopics[subtopic] + 0.06 * self._normal(len(subtopic)))

    def _normal(self, count: int) -> Vectors:
        return self.random.standard_normal((count, DIMENSIONS), dtype=np.float32)


def _unit(vectors: Vectors) -> Vectors:
    unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def _document(row: int) -> str:
    number = row // CHUNKS_PER_DOCUMENT
    return f"docs/{number % 10}/doc-{number}.md"  # the prefix docs/3/ keeps 1 document in 10


def _rows(
    vectors: Vectors, texts: list[str], *, start: int = 0, document: str | None = None, model: str = MODEL
) -> Iterator[IndexRow]:
    """Rows as VectorIndex writes them; a row's id is its number, its column in the exact similarities."""
    for row, vector in enumerate(vectors, start):
        name = document or _document(row)
        chunk = row - start if document else row % CHUNKS_PER_DOCUMENT
        text = texts[row % len(texts)]
        yield (
            "bench",
            name,
            chunk,
            str(row),
            "bench",
            name,
            None,
            "etag",
            model,
            text,
            0,
            len(text),
            "{}",
            vector.tolist(),
        )


async def _stream(rows: Iterator[IndexRow]) -> AsyncIterator[IndexRow]:
    for row in rows:
        yield row


async def _current() -> bool:
    return True


async def _connect(server: PgServer) -> asyncpg.Connection:
    connection = await asyncpg.connect(server.dsn)
    await connection.set_type_codec(
        "vector", schema="public", encoder=encode_vector, decoder=decode_vector, format="binary"
    )
    return connection


async def load(server: PgServer, table: str, vectors: Vectors, texts: list[str]) -> dict[str, Any]:
    """The table made by VectorIndex, filled by COPY with its HNSW index dropped, the index rebuilt."""
    index = VectorIndex(server.dsn, password=None, table=table, dimensions=DIMENSIONS)
    await index.summary("bench")  # makes the table and its indexes
    await index.aclose()
    connection = await _connect(server)
    try:
        definition = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = $1", f"{table}_embedding"
        )
        await connection.execute(f"DROP INDEX {table}_embedding")
        with Clock() as copy:
            await connection.copy_records_to_table(table, records=_rows(vectors, texts), columns=COLUMNS)
        await connection.execute("SET maintenance_work_mem = '512MB'")
        with Clock() as build:
            await connection.execute(definition)
        await connection.execute(f"ANALYZE {table}")
        index_mb = await connection.fetchval("SELECT pg_relation_size($1::regclass)", f"{table}_embedding")
        table_mb = await connection.fetchval("SELECT pg_table_size($1::regclass)", table)
    finally:
        await connection.close()
    return {
        "rows": len(vectors),
        "copy_s": round(copy.seconds, 1),
        "hnsw_build_s": round(build.seconds, 1),
        "hnsw_mb": round(index_mb / 2**20),
        "table_mb": round(table_mb / 2**20),
    }


async def searches(
    index: VectorIndex, queries: Vectors, truth: Vectors, *, prefix: str | None = None, model: str = MODEL
) -> dict[str, Any]:
    """Recall@10 of `index.search` against the exact similarities `truth` (queries x row ids, NaN
    where the filter excludes a row), and its latency in ms."""
    kth = np.partition(np.nan_to_num(truth, nan=-2.0), -10, axis=1)[:, -10]

    def spec(query: NDArray[np.float32]) -> SearchSpec:
        return SearchSpec(mode="vector", text="", vector=query.tolist(), top_k=10, model=model, prefix=prefix)

    for query in queries[:WARM_UP]:
        await index.search(spec(query))
    recalls, returned, latencies = [], [], []
    for number, query in enumerate(queries):
        started = time.perf_counter()
        hits = await index.search(spec(query))
        latencies.append((time.perf_counter() - started) * 1000)
        found = truth[number, [int(hit.id) for hit in hits]]
        recalls.append(min(10, int(np.sum(found >= kth[number] - 1e-6))) / 10)
        returned.append(len(hits))
    cut = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "recall_at_10": round(statistics.fmean(recalls), 4),
        "queries_under_half": sum(recall < 0.5 for recall in recalls),  # the search missed their cluster
        "hits_returned": round(statistics.fmean(returned), 2),
        "p50_ms": round(cut[49], 2),
        "p95_ms": round(cut[94], 2),
        "max_ms": round(max(latencies), 2),
    }


async def sweep(index: VectorIndex, queries: Vectors, truth: Vectors) -> dict[str, Any]:
    """`searches` at each ef_search, by the module constant VectorIndex.search reads."""
    figures = {}
    try:
        for ef_search in EF_SEARCH:
            postgres._EF_SEARCH = ef_search
            label = f"ef_search_{ef_search}" + (" (product)" if ef_search == PRODUCT_EF_SEARCH else "")
            figures[label] = await searches(index, queries, truth)
    finally:
        postgres._EF_SEARCH = PRODUCT_EF_SEARCH
    return figures


def neighbours(truth: Vectors) -> dict[str, float]:
    ranked = -np.sort(-truth, axis=1)
    return {f"cosine_{rank}": round(float(ranked[:, rank - 1].mean()), 3) for rank in (1, 10, 100)}


async def index_scans(server: PgServer, table: str) -> dict[str, int]:
    connection = await _connect(server)
    try:
        found = await connection.fetch(
            "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE relname = $1", table
        )
    finally:
        await connection.close()
    return {row["indexrelname"].removeprefix(f"{table}_"): row["idx_scan"] for row in found}


async def filtered(server: PgServer, index: VectorIndex, queries: Vectors, truth: Vectors) -> dict[str, Any]:
    """Only documents under docs/3/, which hold 1 chunk in 10; which index served the queries, from
    the statistics a backend reports when it ends (the pool is closed for that)."""
    keep = np.array([_document(row).startswith("docs/3/") for row in range(truth.shape[1])])
    await index.aclose()
    before = await index_scans(server, index.table)
    figures = await searches(
        index, queries, np.where(keep, truth, np.nan).astype(np.float32), prefix="docs/3/"
    )
    await index.aclose()
    await asyncio.sleep(1.0)  # the backends' statistics reach the server as they exit
    after = await index_scans(server, index.table)
    return {
        "prefix": "docs/3/",
        "share_kept": round(float(keep.mean()), 3),
        **figures,
        "index_scans": {name: after[name] - before.get(name, 0) for name in after},
    }


async def other_model(
    index: VectorIndex, corpus: Corpus, queries: Vectors, texts: list[str]
) -> dict[str, Any]:
    """2,000 rows of another model beside the 100k, as while reconcile embeds again after a change of
    model: its searches are filtered by `model` alone. Its vectors come from the queries' corpus."""
    vectors = corpus.chunks(2_000)
    start = 100_000
    rows = _rows(vectors, texts, start=start, document="other-model.md", model=OTHER_MODEL)
    await index.replace("bench", "other-model.md", _stream(rows), still_current=_current)
    truth = np.full((len(queries), start + len(vectors)), np.nan, dtype=np.float32)
    truth[:, start:] = queries @ vectors.T
    return {"model_rows": len(vectors), **await searches(index, queries, truth, model=OTHER_MODEL)}


async def search_figures(server: PgServer, texts: list[str]) -> tuple[dict[str, Any], str]:
    corpus = Corpus(seed=7)
    queries = corpus.queries(QUERIES)
    chunks = corpus.chunks(100_000)
    figures: dict[str, Any] = {}
    for label, vectors in (("clustered_10k", chunks[:10_000]), ("clustered_100k", chunks)):
        table = f"bench_{label}"
        loaded = await load(server, table, vectors, texts)
        truth = queries @ vectors.T
        index = VectorIndex(server.dsn, password=None, table=table, dimensions=DIMENSIONS)
        try:
            figures[label] = {**loaded, "neighbours": neighbours(truth), **await sweep(index, queries, truth)}
            if label == "clustered_100k":
                figures[label]["filtered"] = await filtered(server, index, queries, truth)
                figures[label]["other_model_2_percent"] = await other_model(index, corpus, queries, texts)
        finally:
            await index.aclose()
    uniform = np.random.default_rng(11)
    noise = _unit(uniform.standard_normal((10_000, DIMENSIONS), dtype=np.float32))
    noise_queries = _unit(uniform.standard_normal((QUERIES, DIMENSIONS), dtype=np.float32))
    loaded = await load(server, "bench_uniform_10k", noise, texts)
    truth = noise_queries @ noise.T
    index = VectorIndex(server.dsn, password=None, table="bench_uniform_10k", dimensions=DIMENSIONS)
    try:
        figures["uniform_random_10k_worst_case"] = {
            **loaded,
            "neighbours": neighbours(truth),
            **await sweep(index, noise_queries, truth),
        }
    finally:
        await index.aclose()
    return figures, "bench_clustered_100k"


async def write_figures(server: PgServer, s3: S3Server, table: str, texts: list[str]) -> dict[str, Any]:
    """Writes into a table that holds 100k rows: synthetic rows, then a document from the bucket."""
    index = VectorIndex(server.dsn, password=None, table=table, dimensions=DIMENSIONS)
    rows = _rows(Corpus(seed=8).chunks(LARGE_DOCUMENT), texts, start=200_000, document="bench/large.md")
    try:
        with Clock() as replace:
            written = await index.replace("bench", "bench/large.md", _stream(rows), still_current=_current)
        document = await _write_document(s3, index)
    finally:
        await index.aclose()
    return {
        "replace_synthetic": {
            "rows": written,
            "seconds": round(replace.seconds, 2),
            "chunks_per_s": round((written or 0) / replace.seconds),
        },
        "write_document_from_bucket": document,
    }


async def _write_document(s3: S3Server, index: VectorIndex) -> dict[str, Any]:
    """A 3,000-chunk document embedded without the index (a fast emulator), then written to it."""
    text = "\n\n".join(paragraphs(LARGE_DOCUMENT, seed=3))
    with YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        runtime = runtime_for(s3, emulator.url, embeddings_rps=10000, chunk_max_tokens=300)
        async with bucket_storage(s3) as (storage, bucket):
            await storage.put(bucket, "incoming/large.md", text.encode())
            run = await runtime.open_invocation(LocalContext(timeout_s=3600))
            result = await embed_object(run, bucket, "incoming/large.md")
            outputs = BucketOutputs(storage, OutputLayout(bucket, "embeddings/")).document(
                "incoming/large.md"
            )
            manifest = await outputs.manifest()
            assert manifest is not None
            with Clock() as clock:
                outcome = await write_document(index, storage, outputs, manifest)
        await runtime.aclose()
    return {
        "chunks": result.chunks,
        "outcome": outcome,
        "seconds": round(clock.seconds, 2),
        "chunks_per_s": round(result.chunks / clock.seconds),
    }


async def at_quota(s3: S3Server, **overrides: Any) -> dict[str, Any]:
    """The pipeline on a 300-chunk document at the quota, as bench/quota.py runs it."""
    text = "\n\n".join(paragraphs(PIPELINE_CHUNKS))
    with YandexEmulator(EmulatorConfig(rps=10, latency_s=0.05)) as emulator:
        runtime = runtime_for(
            s3, emulator.url, embeddings_rps=10, embeddings_concurrency=32, chunk_max_tokens=300, **overrides
        )
        async with bucket_storage(s3) as (storage, bucket):
            await storage.put(bucket, "incoming/bench.md", text.encode())
            run = await runtime.open_invocation(LocalContext(timeout_s=3600))
            with Clock() as clock:
                result = await embed_object(run, bucket, "incoming/bench.md")
        await runtime.aclose()
    return {
        "chunks": result.chunks,
        "seconds": round(clock.seconds, 2),
        "chunks_per_s": round(result.chunks / clock.seconds, 2),
        "index": result.index,
    }


async def ingestion(server: PgServer, s3: S3Server) -> dict[str, Any]:
    without = await at_quota(s3)
    table = "bench_pipeline"
    indexed = await at_quota(s3, vector_db_dsn=server.dsn, vector_db_table=table)
    connection = await _connect(server)
    try:
        indexed["rows_in_index"] = await connection.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await connection.close()
    return {
        "without_index": without,
        "with_index": indexed,
        "ratio": round(indexed["chunks_per_s"] / without["chunks_per_s"], 3),
    }


async def main() -> dict[str, Any]:
    started = time.perf_counter()
    texts = paragraphs(500)  # chunk texts as the pipeline stores them: 500-700 characters
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_at_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as workdir:
        server = start_pg_server(Path(workdir), durable=False)
        try:
            with s3_server() as s3:
                figures["search"], table = await search_figures(server, texts)
                figures["index_writes"] = await write_figures(server, s3, table, texts)
                figures["ingestion_at_quota"] = await ingestion(server, s3)
        finally:
            stop_pg_server(server)
    figures["seconds"] = round(time.perf_counter() - started)
    return figures


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(asyncio.run(main()), indent=2))
