"""`embedpipe embed`: local files through the pipeline, into the bucket or into a local folder.

Into a bucket, a file is uploaded under SOURCE_PREFIX. If a trigger watches that bucket (the running
local stack does), the upload is all it takes: this command waits for the trigger's outputs and
reports them, so nothing is embedded twice. Otherwise this process runs the pipeline on it. Into a
folder (`--out`), the same stages write the records and manifest there, named as in a bucket; no
bucket is needed. Metadata sidecars (`NAME.metadata.json`) go first, beside their documents (into a
folder: their metadata into the records), and are not documents themselves.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from embedding_pipeline.bucket_policy import sidecar_key
from embedding_pipeline.errors import PipelineError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.outputs.models import SourceRef, recipe
from embedding_pipeline.outputs.records import RecordsSink
from embedding_pipeline.pipeline.objects import embed_object
from embedding_pipeline.pipeline.prepare import chunking_of
from embedding_pipeline.pipeline.result import DocumentResult
from embedding_pipeline.stages.documents import chunk_document, parse_document
from embedding_pipeline.stages.documents.metadata import parse_sidecar
from embedding_pipeline.stages.vectorize import content_hash, stream_embedded
from embedpipe.exits import CommandError, Interrupted
from embedpipe.local_files import LocalFile, collect, set_aside_refused, split_sidecars
from embedpipe.waiting import Upload, embedded, results, timed_out, upload, wait_timeout


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

    def interrupted(self) -> None:
        """End a half-drawn bar, so that the line saying why starts a line of its own."""
        if self.tty and 0 < self.done < self.total:
            sys.stderr.write("\n")


async def embed(
    invocation: Invocation,
    paths: list[Path],
    *,
    bucket: str | None,
    out: Path | None,
    trigger_embeds: bool,
    wait_timeout_s: float | None = None,
    upload_unsupported: bool = False,
) -> int:
    """Everything is checked before the first upload: the paths, one key per file, the formats."""
    if out is None and bucket is None:
        raise CommandError("no bucket: pass --bucket or set SOURCE_BUCKET")
    prefix = invocation.settings.source_prefix
    files, sidecars = split_sidecars(
        collect(paths, stored_at=f"{out}/" if out is not None else f"s3://{bucket}/{prefix}")
    )
    skipped = 0
    if not upload_unsupported:
        files, skipped = set_aside_refused(files, command="embed")
    totals = Totals(files=len(files), skipped=skipped)
    if out is None:
        assert bucket is not None
        for sidecar in sidecars:  # first: the documents' runs read them
            data = await asyncio.to_thread(sidecar.path.read_bytes)
            await invocation.storage.put(bucket, prefix + sidecar.name, data, content_type="application/json")
    if out is None and trigger_embeds:
        assert bucket is not None
        return await _through_the_trigger(invocation, bucket, files, totals, wait_timeout_s)
    progress = Progress(len(files))
    try:
        for file in files:
            if out is not None:
                beside = next((s.path for s in sidecars if s.name == sidecar_key(file.name)), None)
                result = await _embed_to_folder(invocation, file.path, file.name, out, beside)
            else:
                assert bucket is not None
                result = await _upload_and_embed(invocation, bucket, file.path, file.name)
            totals.add(result, file.name)
            progress.step(file.name)
    except asyncio.CancelledError:
        progress.interrupted()
        kept = "the folder keeps the files finished" if out is not None else "what was paid for is kept"
        raise Interrupted(
            f"{totals.done} of {len(files)} file(s) done; {kept}: run it again to finish"
        ) from None
    return totals.report()


async def _through_the_trigger(
    invocation: Invocation, bucket: str, files: list[LocalFile], totals: Totals, wait_timeout_s: float | None
) -> int:
    """Upload, then wait (bounded) for the trigger's manifests."""
    timeout_s = wait_timeout(wait_timeout_s, [file.size for file in files])
    print(
        f"the local stack embeds what is uploaded: waiting up to {timeout_s:g} s for {len(files)} file(s)",
        file=sys.stderr,
    )
    progress = Progress(len(files))
    uploads: list[Upload] = []
    try:
        for file in files:
            uploads.append(await upload(invocation, bucket, file.path, file.name))
        found = await results(uploads, timeout_s)
    except asyncio.CancelledError:
        progress.interrupted()
        raise Interrupted(
            f"{len(uploads)} of {len(files)} file(s) uploaded; the stack goes on embedding them: "
            "`embedpipe status` counts the manifests"
        ) from None
    for file, result in zip(files, found, strict=True):
        if result is not None:
            totals.add(result, file.name)
            progress.step(file.name)
    if None in found:
        totals.pending = found.count(None)
        totals.report()
        raise timed_out(uploads, found, timeout_s)
    return totals.report()


@dataclass(slots=True)
class Totals:
    """The JSON summary an `embed` ends with; parked and refused files named on stderr as they come."""

    files: int
    skipped: int  # set aside before uploading: the function would refuse them
    chunks: int = 0
    embedded: int = 0
    reused: int = 0
    tokens: int = 0
    errors: int = 0
    pending: int = 0  # no manifest yet when the wait ran out
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, result: DocumentResult, name: str) -> None:
        self.done += 1
        if result.outcome in ("parked", "refused"):
            self.errors += 1
            print(f"{name}: {result.outcome}: {result.reason}", file=sys.stderr)
        self.chunks += result.chunks
        self.embedded += result.embedded
        self.reused += result.reused
        self.tokens += result.tokens

    def report(self) -> int:
        """Print the summary; the exit status: 1 if a file failed."""
        summary = {name: getattr(self, name) for name in self.__slots__ if name not in ("done", "started")}
        if not self.pending:
            del summary["pending"]
        summary["seconds"] = round(time.monotonic() - self.started, 2)
        print(json.dumps(summary), flush=True)
        return 1 if self.errors else 0


async def _upload_and_embed(invocation: Invocation, bucket: str, path: Path, name: str) -> DocumentResult:
    key = invocation.settings.source_prefix + name
    await invocation.storage.put(bucket, key, await asyncio.to_thread(path.read_bytes))
    return await embed_object(invocation, bucket, key)


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


async def _embed_to_folder(
    invocation: Invocation, path: Path, name: str, out: Path, sidecar: Path | None
) -> DocumentResult:
    """The stages of a bucket run, with the records and manifest written to `out`, named as in a
    bucket; the sidecar's metadata (a file's own has no x-amz-meta) into every record."""
    settings = invocation.settings
    made = recipe(settings, settings.document_model_uri)
    data = await asyncio.to_thread(path.read_bytes)
    sidecar_data = None if sidecar is None else await asyncio.to_thread(sidecar.read_bytes)
    try:
        metadata = {} if sidecar_data is None else parse_sidecar(sidecar_data, sidecar_key(name))
        document = parse_document(data, name, text_field=settings.json_text_field)
        chunks = chunk_document(document, chunking_of(settings))
    except PipelineError as exc:
        return DocumentResult("local", name, "parked", reason=str(exc))
    keys = OutputLayout("local", "").document(name)
    writer = _FileWriter(out / keys.records)
    source = SourceRef(bucket="local", key=name, etag=hashlib.md5(data, usedforsecurity=False).hexdigest())
    records = RecordsSink(writer, keys, record_id=name, source=source, recipe=made, metadata=metadata)
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
    return embedded(manifest)


async def _ignore(_hash: str, _embedding: object) -> None:
    return
