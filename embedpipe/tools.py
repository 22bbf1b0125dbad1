"""The CLI's commands that use the pipeline itself: embed (embedpipe/embed_files.py), search, reindex,
status, and object chores."""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import sys
from array import array
from pathlib import Path

from devstack.monitoring_server import METRICS_FILE, recent_totals
from embedding_pipeline.bucket_policy import default_bucket, not_a_source
from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents.formats import SNIFF_BYTES, refusal
from embedpipe.embed_files import embed
from embedpipe.exits import CommandError
from embedpipe.services import Services


async def run_command(args: argparse.Namespace, target: Services) -> int:
    # The metadata service answers only inside the cloud: a laptop that has no token says so at once.
    async with Runtime(load_settings(), metadata_service=False) as runtime:
        try:
            invocation = await runtime.open_invocation(None)
            bucket = getattr(args, "bucket", None) or default_bucket(runtime.settings)
            if args.command == "embed":
                return await embed(
                    invocation,
                    args.paths,
                    bucket=bucket,
                    out=args.out,
                    trigger_embeds=target.trigger_embeds_uploads,
                    wait_timeout_s=args.wait_timeout,
                    upload_unsupported=args.upload_unsupported,
                )
            if bucket is None:
                raise CommandError("no bucket: pass --bucket or set SOURCE_BUCKET")
            if args.command == "search":
                return await search(invocation, bucket, args)
            if args.command == "reindex":
                return await reindex(invocation, bucket, recreate=args.recreate, keywords=args.keywords)
            if args.command == "status":
                metrics = target.data_dir / METRICS_FILE if target.data_dir is not None else None
                return await status(invocation, bucket, metrics=metrics)
            return await chores(invocation, bucket, args)
        except PipelineError as exc:
            print(f"embedpipe {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1


def _cosine(query: array[float], norm: float, vector: list[float]) -> float:
    dot = sum(a * b for a, b in zip(query, vector, strict=False))
    other = math.sqrt(sum(b * b for b in vector)) or 1.0
    return dot / (norm * other)


async def search(invocation: Invocation, bucket: str, args: argparse.Namespace) -> int:
    """From the vector index when one is configured, as `POST /v1/search` answers; else by reading
    every records object of the bucket (slow, but needs nothing but the bucket; vectors only)."""
    query, top = args.query, args.top
    if not query.strip():
        raise CommandError("the query is empty")
    if top < 1:
        raise CommandError("--top must be at least 1")
    metadata = _filter(args.filter)
    if invocation.vector_index is None:
        for given, flag in (
            (args.prefix, "--prefix"),
            (metadata, "--filter"),
            (args.mode != "hybrid", "--mode"),
        ):
            if given:
                raise CommandError(f"{flag} needs the vector index: set VECTOR_DB_DSN")
        return await scan_records(invocation, bucket, query, top)
    from embedding_pipeline.vector_index.search import search as search_index  # noqa: PLC0415

    found = await search_index(
        invocation,
        invocation.vector_index,
        query,
        top_k=top,
        mode=args.mode,
        prefix=args.prefix,
        metadata=metadata,
        score_threshold=args.score_threshold,
    )
    if not found.hits:
        print("nothing found: no chunk matches, or none is in the index yet", file=sys.stderr)
        return 1
    for hit in found.hits:
        snippet = " ".join(hit.text.split())[:150]
        ranks = f"vector #{hit.vector_rank or '-'}, keyword #{hit.keyword_rank or '-'}"
        print(f"{hit.score:.4f}  {hit.id}  ({ranks})\n       {snippet}")
    return 0


def _filter(text: str | None) -> dict[str, object] | None:
    """--filter as /v1/search's `filter`: a JSON object."""
    if text is None:
        return None
    from embedding_pipeline.finite_json import loads_finite  # noqa: PLC0415
    from embedding_pipeline.vector_index.filters import FilterError, parse_filter  # noqa: PLC0415

    try:
        value = loads_finite(text)
    except ValueError as exc:
        raise CommandError(f"--filter is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CommandError('--filter must be a JSON object, such as {"lang": "ru"}')
    try:
        parse_filter(value)  # the API's own rules: a bad operator or field named as /v1/search names it
    except FilterError as exc:
        raise CommandError(f"--filter: {exc}") from None
    return value


async def reindex(invocation: Invocation, bucket: str, *, recreate: bool, keywords: bool) -> int:
    """Rebuild the vector index from the bucket's records: every document written afresh, rows of
    documents that are gone removed. `recreate` drops the table first (after a change of dimensions);
    `keywords` only fills the keyword column where it is missing, from the rows themselves."""
    from embedding_pipeline.pipeline.reconcile.reindex import rebuild_index  # noqa: PLC0415

    if invocation.vector_index is None:
        raise CommandError("no vector index is configured: set VECTOR_DB_DSN")
    if keywords:
        filled = await invocation.vector_index.fill_keywords()
        print(json.dumps(filled, indent=2))
        return 0
    report = await rebuild_index(invocation, bucket, recreate=recreate)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0 if not report["failed"] and report["stopped_by"] is None else 1


async def scan_records(invocation: Invocation, bucket: str, query: str, top: int) -> int:
    embedding = await invocation.embedder.embed_text(query, invocation.settings.query_model_uri)
    norm = math.sqrt(sum(v * v for v in embedding.vector)) or 1.0
    best: list[tuple[float, str, str]] = []
    outputs = invocation.outputs(bucket)
    async for info, output in outputs.listing():
        if output.kind != "records" or output.inline:
            continue
        async for line in invocation.storage.iter_lines(outputs.layout.bucket, info.key):
            record = json.loads(line)
            score = _cosine(embedding.vector, norm, record["embedding"])
            item = (score, record["id"], record["text"])
            if len(best) < top:
                heapq.heappush(best, item)
            else:
                heapq.heappushpop(best, item)
    if not best:
        print("no records yet: upload documents and wait for their manifests", file=sys.stderr)
        return 1
    for score, record_id, text in sorted(best, reverse=True):
        snippet = " ".join(text.split())[:150]
        print(f"{score:.3f}  {record_id}\n       {snippet}")
    return 0


async def status(invocation: Invocation, bucket: str, *, metrics: Path | None = None) -> int:
    """Counts of what the bucket holds, the reconcile sweeps under way and the last one finished;
    with the local stack, what its function wrote to Monitoring in the last hour (`metrics`: the
    file its stand-in keeps; in the cloud, Monitoring shows them)."""
    from embedding_pipeline.pipeline.reconcile.report import sweeps_in_progress  # noqa: PLC0415

    settings, storage = invocation.settings, invocation.storage
    sources = 0
    async for info in storage.list_objects(bucket, settings.source_prefix):
        sources += not_a_source(settings, info.key) is None  # not a metadata sidecar, not an output
    outputs = invocation.outputs(bucket)
    counts = {"manifest": 0, "error": 0, "queue_error": 0, "index_pending": 0}
    checkpoints: set[str | None] = set()
    last_report: str | None = None
    async for info, output in outputs.listing():
        if output.kind in counts:
            counts[output.kind] += 1
        elif output.kind == "checkpoint":
            checkpoints.add(output.document)
        elif output.kind == "report":
            last_report = max(last_report or info.key, info.key)
    summary = {
        "bucket": bucket,
        "sources": sources,
        "manifests": counts["manifest"],
        "errors": counts["error"],
        "parked_messages": counts["queue_error"],
        "checkpoints": len(checkpoints),
        "index_pending": counts["index_pending"],  # marked for the vector index: reconcile writes them
        "reconcile_in_progress": await sweeps_in_progress(storage, outputs.layout),
        "last_reconcile": await outputs.read_report(last_report) if last_report else None,
    }
    if metrics is not None:
        summary["metrics_last_hour"] = recent_totals(metrics)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


async def chores(invocation: Invocation, bucket: str, args: argparse.Namespace) -> int:
    storage = invocation.storage
    if args.command == "put":
        if not args.path.is_file():
            raise CommandError(f"no such file: {args.path}")
        data = await asyncio.to_thread(args.path.read_bytes)
        for warning in put_warnings(invocation.settings.source_prefix, args.key, data[:SNIFF_BYTES]):
            print(f"embedpipe put: {warning}", file=sys.stderr)
        await storage.put(bucket, args.key, data)
        print(f"s3://{bucket}/{args.key}")
    elif args.command == "ls":
        async for info in storage.list_objects(bucket, args.prefix):
            print(f"{info.size:>10}  {info.key}")
    elif args.command == "cat":
        data = await storage.get(bucket, args.key, max_bytes=256 * 1024 * 1024)
        if data is None:
            raise CommandError(f"no such key: {args.key}")
        sys.stdout.buffer.write(data)
    else:
        await storage.delete(bucket, args.key)
    return 0


def put_warnings(source_prefix: str, key: str, head: bytes) -> list[str]:
    """What `put` says before storing: a key no trigger embeds, or a document the function refuses."""
    if not key.startswith(source_prefix):
        return [
            f"{key} is outside SOURCE_PREFIX ({source_prefix!r}): stored, but not embedded "
            f"(a key such as {source_prefix}{key.rsplit('/', 1)[-1]} is)"
        ]
    reason = refusal(key, head)
    return [] if reason is None else [f"{key} will be parked, not embedded: {reason}"]
