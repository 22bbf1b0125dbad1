"""`embedpipe embed`: local files through the pipeline, into the bucket or into a local folder.

Into a bucket, a file is uploaded under SOURCE_PREFIX. If a trigger watches that bucket (the running
local stack does), the upload is all it takes: this command waits for the trigger's outputs and
reports them, so nothing is embedded twice. Otherwise this process runs the pipeline on it. Into a
folder (`--out`), the same stages write the records and manifest there, named as in a bucket; no
bucket is needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.models import Manifest, SourceRef, recipe
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.pipeline.prepare import chunking_of
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.stages.documents import chunk_document, parse_document
from embedding_pipeline.stages.vectorize import content_hash, stream_embedded

_WAIT_POLL_S = 0.5


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


async def embed(
    invocation: Invocation, paths: list[Path], *, bucket: str | None, out: Path | None, trigger_embeds: bool
) -> int:
    files = _files(paths)
    progress = Progress(len(files))
    started = time.monotonic()
    totals = {"files": len(files), "chunks": 0, "embedded": 0, "reused": 0, "tokens": 0, "errors": 0}
    if out is None and bucket is None:
        raise CommandError("no bucket: pass --bucket or set SOURCE_BUCKET")
    waiting: list[asyncio.Task[DocumentResult]] = []
    if out is None and bucket is not None and trigger_embeds:
        print(f"the local stack embeds what is uploaded: waiting for {len(files)} file(s)", file=sys.stderr)
        waiting = [await _upload(invocation, bucket, path, name) for path, name in files]
    for number, (path, name) in enumerate(files):
        if out is not None:
            result = await _embed_to_folder(invocation, path, name, out)
        elif waiting:
            result = await waiting[number]
        else:
            assert bucket is not None
            result = await _upload_and_embed(invocation, bucket, path, name)
        if result.outcome in ("parked", "refused"):
            totals["errors"] += 1
            print(f"{name}: {result.outcome}: {result.reason}", file=sys.stderr)
        for field in ("chunks", "embedded", "reused", "tokens"):
            totals[field] += getattr(result, field)
        progress.step(name)
    totals["seconds"] = round(time.monotonic() - started, 2)  # type: ignore[assignment]
    print(json.dumps(totals))
    return 1 if totals["errors"] else 0


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


async def _upload_and_embed(invocation: Invocation, bucket: str, path: Path, name: str) -> DocumentResult:
    key = invocation.settings.source_prefix + name
    await invocation.storage.put(bucket, key, await asyncio.to_thread(path.read_bytes))
    return await embed_object(invocation, bucket, key)


async def _upload(invocation: Invocation, bucket: str, path: Path, name: str) -> asyncio.Task[DocumentResult]:
    """Upload now; the task waits for the trigger's outputs of exactly these bytes."""
    key = invocation.settings.source_prefix + name
    outputs = invocation.outputs(bucket).document(key)
    before = await outputs.manifest()
    etag = await invocation.storage.put(bucket, key, await asyncio.to_thread(path.read_bytes))
    if before is not None and before.source.etag == etag:  # the same bytes: no event, nothing to pay
        return asyncio.create_task(_result(DocumentResult(bucket, key, "unchanged", chunks=before.chunks)))
    return asyncio.create_task(_outputs_of(invocation, bucket, key, etag))


async def _result(value: DocumentResult) -> DocumentResult:
    return value


async def _outputs_of(invocation: Invocation, bucket: str, key: str, etag: str | None) -> DocumentResult:
    outputs = invocation.outputs(bucket).document(key)
    while True:
        status = await outputs.status()
        manifest = status.manifest if status else None
        if manifest is not None and manifest.source.etag == etag:
            return _embedded(manifest)
        error = status.error if status else None
        if error is not None and error.source.etag == etag:
            return DocumentResult(bucket, key, "parked", reason=error.reason)
        await asyncio.sleep(_WAIT_POLL_S)


class _FileWriter:
    """Records into a local file, which appears whole once complete, as an object upload does."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._partial = path.with_name(path.name + ".partial")
        self._file = self._partial.open("wb")
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.etag: str | None = None

    async def write(self, data: bytes) -> None:
        self._file.write(data)
        self._md5.update(data)

    def finish(self) -> None:
        self._file.close()
        self._partial.replace(self._path)
        self.etag = self._md5.hexdigest()

    def abandon(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)


async def _embed_to_folder(invocation: Invocation, path: Path, name: str, out: Path) -> DocumentResult:
    """The stages of a bucket run, with the records and manifest written to `out`, named as in a bucket."""
    settings = invocation.settings
    made = recipe(settings, settings.document_model_uri)
    data = await asyncio.to_thread(path.read_bytes)
    try:
        document = parse_document(data, name, text_field=settings.json_text_field)
        chunks = chunk_document(document, chunking_of(settings))
    except PipelineError as exc:
        return DocumentResult("local", name, "parked", reason=str(exc))
    keys = OutputLayout("local", "").document(name)
    writer = _FileWriter(out / keys.records)
    source = SourceRef(bucket="local", key=name, etag=hashlib.md5(data, usedforsecurity=False).hexdigest())
    records = RecordsSink(writer, keys, record_id=name, source=source, recipe=made, metadata={})
    try:
        await stream_embedded(
            chunks,
            known={},
            embed=lambda text: invocation.embedder.embed_once(text, content_hash(text), made.model),
            concurrency=settings.embeddings_concurrency,
            deadline=invocation.deadline,
            on_embedded=_ignore,
            emit=records.add,
        )
    except BaseException:
        writer.abandon()
        raise
    writer.finish()  # the records first, the manifest last, as in a bucket
    manifest = records.manifest(document_format=document.format, deployment=invocation.deployment)
    (out / keys.manifest).write_text(manifest.model_dump_json(indent=2))
    return _embedded(manifest)


def _embedded(manifest: Manifest) -> DocumentResult:
    """A file's result, read from the manifest that vouches for its records."""
    usage, source = manifest.usage, manifest.source
    return DocumentResult(
        source.bucket,
        source.key,
        "embedded",
        chunks=manifest.chunks,
        embedded=usage.api_requests,
        reused=usage.reused_chunks,
        tokens=usage.billed_tokens,
    )


async def _ignore(_hash: str, _embedding: object) -> None:
    return
