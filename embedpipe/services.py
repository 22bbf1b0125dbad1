"""Where `embedpipe` points: at the services the environment names, else at the local stack's.

The local stack's settings fill in only what the user left unset (devstack/local_env.py), and its
ports come from the running stack's own file (devstack/running.py), so a second terminal needs no
exports. A command that needs the local stack and finds nothing answering says so at once, naming
the address and what to do, instead of retrying against a closed port.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from devstack.local_env import (
    DEFAULT_BUCKET,
    DEFAULT_DATA_DIR,
    DEFAULT_EMBEDDINGS_PORT,
    DEFAULT_S3_PORT,
    local_defaults,
    ocr_defaults,
    uses_local_embeddings,
    uses_local_storage,
)
from devstack.running import RunningStack, StackError, answers, find_running


@dataclass(frozen=True, slots=True)
class Services:
    local_storage: bool  # the bucket is the local stack's
    local_embeddings: bool  # the model is the local stack's
    stack: RunningStack | None  # a running `make run`, if any
    data_dir: Path | None = None  # the local stack's data directory, when its bucket is the one used

    @property
    def trigger_embeds_uploads(self) -> bool:
        """Whether an upload is embedded by a trigger: the running local stack watches its bucket."""
        return self.local_storage and self.stack is not None


def point_at(
    environ: MutableMapping[str, str] = os.environ, *, needs_storage: bool, needs_embeddings: bool
) -> Services:
    """Fill in the local stack's settings the user left unset, and check that what is needed answers."""
    data_dir = Path(environ.get("LOCAL_DATA_DIR", DEFAULT_DATA_DIR))
    stack = find_running(data_dir)
    s3_port = stack.s3_port if stack else int(environ.get("LOCAL_S3_PORT", DEFAULT_S3_PORT))
    embeddings_port = (
        stack.embeddings_port if stack else int(environ.get("LOCAL_EMBEDDINGS_PORT", DEFAULT_EMBEDDINGS_PORT))
    )
    bucket = stack.bucket if stack else environ.get("LOCAL_BUCKET", DEFAULT_BUCKET)
    local_storage = uses_local_storage(environ)
    target = Services(
        local_storage, uses_local_embeddings(environ), stack, data_dir if local_storage else None
    )
    pg_port = stack.pg_port if stack else None
    environ.update(
        local_defaults(
            environ, s3_port=s3_port, embeddings_port=embeddings_port, pg_port=pg_port, bucket=bucket
        )
    )
    # `invoke` reads scans with the running stack's OCR, or parks them when there is none to ask.
    ocr_url = stack.ocr_url if stack is not None else None
    environ.update(ocr_defaults(environ, ocr_url, local_credentials=target.local_embeddings))
    if local_storage and not environ.get("METRICS_URL"):
        # `invoke` on the local stack's bucket: its counters go to the stack's stand-in, or nowhere.
        if stack is not None and stack.metrics_url is not None:
            environ["METRICS_URL"] = stack.metrics_url
        else:
            environ.setdefault("METRICS", "false")
    if needs_storage and target.local_storage and not answers(s3_port):
        raise StackError(
            f"the local stack is not running: nothing answers at http://127.0.0.1:{s3_port} (its S3). "
            "Start it with `make run` in another terminal, or export S3_ENDPOINT and the function's "
            "settings to use a real bucket"
        )
    if needs_embeddings and target.local_embeddings and not answers(embeddings_port):
        raise StackError(
            f"the local stack is not running: nothing answers at http://127.0.0.1:{embeddings_port} (its "
            "embedding model). Start it with `make run` in another terminal, or export YC_IAM_TOKEN or "
            "YC_API_KEY (and YC_FOLDER_ID) for Yandex AI Studio, or EMBEDDINGS_URL for another server"
        )
    return target
