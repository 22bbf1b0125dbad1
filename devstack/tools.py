"""The CLI's commands that use the pipeline itself: embed, search, status, and object chores."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import heapq
import json
import math
import sys
import time
from array import array
from dataclasses import asdict
from pathlib import Path
from typing import Any

from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.outputs.lines import record_line
from embedding_pipeline.outputs.models import (
    Manifest,
    ManifestUsage,
    SourceRef,
    chunking_summary,
    settings_fingerprint,
    utc_now,
)
from embedding_pipeline.pipeline.embed import chunking_of, embed_object
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents import chunk_document, parse_document
from embedding_pipeline.stages.vectorize import embed_chunks


class CommandError(Exception):
    """Bad input to a command: printed with the command's name, exit status 2."""


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.tty = sys.stderr.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            sys.stderr.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {label[:40]:<40}"
            )
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


async def run_command(args: argparse.Namespace) -> int:
    runtime = Runtime(load_settings())
    try:
        run = await runtime.open_invocation(None)
        bucket = getattr(args, "bucket", None) or runtime.settings.default_bucket
        if bucket is None and getattr(args, "out", None) is None:
            raise CommandError("no bucket: pass --bucket or set SOURCE_BUCKET")
        command = args.command
        if command == "embed":
            return await embed(run, args.paths, bucket, args.out)
        if command == "search":
            return await search(run, str(bucket), args.query, args.top)
        if command == "status":
            return await status(run, str(bucket))
        return await chores(run, str(bucket), args)
    except PipelineError as exc:
        print(f"embedpipe {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        await runtime.aclose()


def _files(paths: list[Path]) -> list[tuple[Path, str]]:
    """(file, name relative to what was given), folders walked, hidden files skipped."""
    found = []
    for path in paths:
        if path.is_file():
            found.append((path, path.name))
        elif path.is_dir():
            for child in sorted(path.rglob("*")):
                relative = child.relative_to(path)
                if child.is_file() and not any(part.startswith(".") for part in relative.parts):
                    found.append((child, relative.as_posix()))
        else:
            raise CommandError(f"no such file or folder: {path}")
    return found


async def embed(run: Invocation, paths: list[Path], bucket: str | None, out: Path | None) -> int:
    files = _files(paths)
    progress = Progress(len(files))
    started = time.monotonic()
    totals = {"files": len(files), "chunks": 0, "embedded": 0, "reused": 0, "tokens": 0, "errors": 0}
    for path, name in files:
        key = run.settings.source_prefix + name
        if out is not None:
            result = await _embed_to_folder(run, path, name, out)
        else:
            assert bucket is not None
            await run.storage.put(bucket, key, await asyncio.to_thread(path.read_bytes))
            result = asdict(await embed_object(run, bucket, key))
        if result["outcome"] in ("parked", "refused"):
            totals["errors"] += 1
            print(f"{name}: {result['outcome']}: {result.get('reason')}", file=sys.stderr)
        for field in ("chunks", "embedded", "reused", "tokens"):
            totals[field] += int(result.get(field) or 0)
        progress.step(name)
    totals["seconds"] = round(time.monotonic() - started, 2)  # type: ignore[assignment]
    print(json.dumps(totals))
    return 1 if totals["errors"] else 0


async def _embed_to_folder(run: Invocation, path: Path, name: str, out: Path) -> dict[str, Any]:
    """The same stages as a bucket run, with the records and manifest written to a local folder."""
    settings = run.settings
    model = settings.document_model_uri
    data = await asyncio.to_thread(path.read_bytes)
    try:
        chunks = chunk_document(
            parse_document(data, name, text_field=settings.json_text_field), chunking_of(settings)
        )
    except PipelineError as exc:
        return {"outcome": "parked", "reason": str(exc)}
    embedded = await embed_chunks(
        chunks,
        known={},
        embed=lambda text: run.embed_text(text, model),
        concurrency=settings.embeddings_concurrency,
        deadline=run.deadline,
        on_embedded=_ignore,
    )
    source = SourceRef(bucket="local", key=name, etag=hashlib.md5(data, usedforsecurity=False).hexdigest())
    lines = [
        record_line(
            record_id=name,
            number=number,
            chunk=item.chunk,
            text_hash=item.text_hash,
            vector=item.vector,
            tokens=item.tokens,
            model=model,
            source=source,
        )
        for number, item in enumerate(embedded)
    ]
    tokens = sum(item.tokens for item in embedded)
    manifest = Manifest(
        source=source,
        records=SourceRef(bucket="local", key=f"{name}.jsonl"),
        model=model,
        dimensions=settings.embeddings_dimensions,
        chunks=len(embedded),
        format=path.suffix.lstrip(".") or "text",
        usage=ManifestUsage(tokens=tokens, billed_tokens=tokens, api_requests=len(embedded), reused_chunks=0),
        chunking=chunking_summary(settings),
        fingerprint=settings_fingerprint(settings, model),
        created_at=utc_now(),
    )
    await asyncio.to_thread(_write_folder, out, name, lines, manifest.model_dump_json(indent=2))
    return {"outcome": "embedded", "chunks": len(embedded), "embedded": len(embedded), "tokens": tokens}


def _write_folder(out: Path, name: str, lines: list[bytes], manifest: str) -> None:
    records = out / f"{name}.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    records.write_bytes(b"".join(lines))  # records first, the manifest last, as in a bucket
    (out / f"{name}.manifest.json").write_text(manifest)


async def _ignore(_hash: str, _embedding: object) -> None:
    return


def _cosine(query: array[float], norm: float, vector: list[float]) -> float:
    dot = sum(a * b for a, b in zip(query, vector, strict=False))
    other = math.sqrt(sum(b * b for b in vector)) or 1.0
    return dot / (norm * other)


async def search(run: Invocation, bucket: str, query: str, top: int) -> int:
    if not query.strip():
        raise CommandError("the query is empty")
    if top < 1:
        raise CommandError("--top must be at least 1")
    embedding = await run.embed_text(query, run.settings.query_model_uri)
    norm = math.sqrt(sum(v * v for v in embedding.vector)) or 1.0
    best: list[tuple[float, str, str]] = []
    outputs = run.outputs(bucket)
    async for key, output in outputs.listing():
        if output.kind != "records" or output.inline:
            continue
        async for line in run.storage.iter_lines(outputs.layout.bucket, key):
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


async def status(run: Invocation, bucket: str) -> int:
    settings, storage = run.settings, run.storage
    sources = [info async for info in storage.list_objects(bucket, settings.source_prefix)]
    outputs = run.outputs(bucket)
    counts = {"manifest": 0, "error": 0, "queue_error": 0}
    checkpoints: set[str | None] = set()
    reports: list[str] = []
    async for key, output in outputs.listing():
        if output.kind in counts:
            counts[output.kind] += 1
        elif output.kind == "checkpoint":
            checkpoints.add(output.document)
        elif output.kind == "report":
            reports.append(key)
    summary = {
        "bucket": bucket,
        "sources": len(sources),
        "manifests": counts["manifest"],
        "errors": counts["error"],
        "parked_messages": counts["queue_error"],
        "checkpoints": len(checkpoints),
        "last_reconcile": await outputs.read_report(max(reports)) if reports else None,
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


async def chores(run: Invocation, bucket: str, args: argparse.Namespace) -> int:
    storage = run.storage
    if args.command == "put":
        if not args.path.is_file():
            raise CommandError(f"no such file: {args.path}")
        await storage.put(bucket, args.key, await asyncio.to_thread(args.path.read_bytes))
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
