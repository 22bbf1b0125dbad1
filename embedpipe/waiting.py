"""`embedpipe embed` with a trigger that embeds the uploads: upload, then wait for the manifests, for
a bounded time.

The wait ends when every file has a manifest (or an error record) for exactly the bytes uploaded,
or when its time runs out: then the files still pending are named, with how to check them later,
and the command exits 124 (as `timeout` does). The stack goes on embedding them either way.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path

from embedding_pipeline.invocation import Invocation
from embedding_pipeline.outputs.models import Manifest
from embedding_pipeline.pipeline.result import DocumentResult
from embedpipe.exits import CommandError, WaitTimedOut

WAIT_TIMEOUT_VARIABLE = "EMBEDPIPE_WAIT_TIMEOUT_S"
_POLL_S = 0.5
# The default wait: a fixed start, a little per file (the trigger's turn) and per byte. Measured with
# the local stack (README): README.md, 40 chunks of ~90 KB, took 14.8 s (~6 KB/s); 2 KB/s leaves
# room for a slower laptop and for other work queued before ours.
_BASE_S, _PER_FILE_S, _BYTES_PER_S = 60.0, 5.0, 2000.0


def wait_timeout(given: float | None, sizes: list[int]) -> float:
    """`--wait-timeout`, else EMBEDPIPE_WAIT_TIMEOUT_S, else the default for files of these sizes."""
    if given is None:
        raw = os.environ.get(WAIT_TIMEOUT_VARIABLE, "").strip()
        if raw:
            try:
                given = float(raw)
            except ValueError:
                raise CommandError(f"{WAIT_TIMEOUT_VARIABLE}={raw!r} is not a number of seconds") from None
    if given is None:
        return round(_BASE_S + _PER_FILE_S * len(sizes) + sum(sizes) / _BYTES_PER_S)
    if not given > 0:
        raise CommandError(f"the wait timeout must be a positive number of seconds, not {given}")
    return given


@dataclass(slots=True)
class Upload:
    """One file uploaded; `task` waits for the trigger's outputs of exactly its bytes."""

    name: str
    key: str
    manifest_key: str
    task: asyncio.Task[DocumentResult]


async def upload(invocation: Invocation, bucket: str, path: Path, name: str) -> Upload:
    """Upload now, and start waiting for the outputs of these bytes."""
    key = invocation.settings.source_prefix + name
    outputs = invocation.outputs(bucket).document(key)
    before = await outputs.manifest()
    etag = await invocation.storage.put(bucket, key, await asyncio.to_thread(path.read_bytes))
    if before is not None and before.source.etag == etag:  # the same bytes: no event, nothing to pay
        done = DocumentResult(bucket, key, "unchanged", chunks=before.chunks)
        return Upload(name, key, outputs.keys.manifest, asyncio.create_task(_now(done)))
    task = asyncio.create_task(_outputs_of(invocation, bucket, key, etag))
    return Upload(name, key, outputs.keys.manifest, task)


async def results(uploads: list[Upload], timeout_s: float) -> list[DocumentResult | None]:
    """Each upload's result in order, as soon as it is known; None for those still pending when
    `timeout_s` ran out (then the caller reports them)."""
    ends = time.monotonic() + timeout_s
    found: list[DocumentResult | None] = []
    for item in uploads:
        done, _ = await asyncio.wait({item.task}, timeout=max(ends - time.monotonic(), 0))
        found.append(item.task.result() if done else None)
    for item in uploads:
        item.task.cancel()
    return found


def timed_out(uploads: list[Upload], found: list[DocumentResult | None], timeout_s: float) -> WaitTimedOut:
    """The one line a run that gave up waiting ends with: what is pending and how to check it."""
    pending = [item for item, result in zip(uploads, found, strict=True) if result is None]
    named = ", ".join(item.key for item in pending[:3]) + (
        f" and {len(pending) - 3} more" if len(pending) > 3 else ""
    )
    return WaitTimedOut(
        f"gave up waiting after {timeout_s:g} s: {len(pending)} of {len(uploads)} file(s) have no "
        f"manifest yet ({named}); the stack goes on embedding them: check later with `embedpipe status` or "
        f"`embedpipe cat {pending[0].manifest_key}`, or wait longer with --wait-timeout "
        f"(env {WAIT_TIMEOUT_VARIABLE})"
    )


async def _now(value: DocumentResult) -> DocumentResult:
    return value


async def _outputs_of(invocation: Invocation, bucket: str, key: str, etag: str | None) -> DocumentResult:
    outputs = invocation.outputs(bucket).document(key)
    while True:  # bounded by `results`, which cancels it when the wait runs out
        status = await outputs.status()
        manifest = status.manifest if status else None
        if manifest is not None and manifest.source.etag == etag:
            return embedded(manifest)
        error = status.error if status else None
        if error is not None and error.source.etag == etag:
            return DocumentResult(bucket, key, "parked", reason=error.reason)
        await asyncio.sleep(_POLL_S)


def embedded(manifest: Manifest) -> DocumentResult:
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
