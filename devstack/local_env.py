"""The settings that point the function at the local stack: the only difference from the cloud.

They come in three groups, storage, embeddings and the vector index, and each group fills only what
the user left unset, and only if the user pointed that service nowhere: a user who exported `YC_IAM_TOKEN` (or
`EMBEDDINGS_URL`, or `YC_API_KEY`) means a real embeddings API, and gets none of the local model's
settings (its placeholder key, its 384 dimensions); one who exported `S3_ENDPOINT` or access keys
means a real bucket, and gets no local index either (an index mirrors one bucket's records).
OCR is a fourth (`ocr_defaults`): a user who exported `OCR_URL` or `OCR_OPERATIONS_URL` means Yandex's
Vision OCR (or another), and gets neither the local stand-in nor OCR turned off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from devstack.embedder import DIMENSIONS
from devstack.ocr_server import OCR_PATH, OPERATIONS_PATH
from devstack.pgserver import LOCAL_PG_DATABASE, LOCAL_PG_PASSWORD, LOCAL_PG_USER
from devstack.s3server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

DEFAULT_S3_PORT = 8333
DEFAULT_EMBEDDINGS_PORT = 8555
DEFAULT_HTTP_PORT = 8080
DEFAULT_PG_PORT = 8432
DEFAULT_QUEUE_PORT = 9324
DEFAULT_OCR_PORT = 0  # any free port: nothing but the function, told by OCR_URL, calls it
DEFAULT_BUCKET = "local-docs"
DEFAULT_DATA_DIR = ".local/run"
LOCAL_QUEUE = "local-jobs"  # the work queue; its dead-letter queue is LOCAL_QUEUE + "-dlq"

# Any of these set by the user means: this service is not the local stack's.
STORAGE_CHOSEN = ("S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
EMBEDDINGS_CHOSEN = ("EMBEDDINGS_URL", "YC_API_KEY", "YC_IAM_TOKEN")
INDEX_CHOSEN = ("VECTOR_DB_DSN",)
OCR_CHOSEN = ("OCR_URL", "OCR_OPERATIONS_URL")
LOCAL_API_KEY = "local-no-key-needed"  # a placeholder: the local model takes any key, Yandex refuses it

# The local model computes one request at a time (about 0.4 s for a 350-token chunk on two idle
# cores, 2.8 chunks/s at most, reached with 2 in flight): more in flight only queue inside it, until
# a 30 s timeout sends them again while it still computes the abandoned ones. It has no quota.
LOCAL_EMBEDDINGS_CONCURRENCY = 2
LOCAL_EMBEDDINGS_TIMEOUT_S = 120
LOCAL_EMBEDDINGS_RPS = 1000


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def storage_settings(s3_port: int, bucket: str) -> dict[str, str]:
    return {
        "S3_ENDPOINT": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "SOURCE_BUCKET": bucket,
    }


def embeddings_settings(embeddings_port: int) -> dict[str, str]:
    return {
        "YC_FOLDER_ID": "local",
        "EMBEDDINGS_URL": f"http://127.0.0.1:{embeddings_port}/v1",
        "EMBEDDINGS_DIMENSIONS": str(DIMENSIONS),
        "YC_API_KEY": LOCAL_API_KEY,
        "EMBEDDINGS_CONCURRENCY": str(LOCAL_EMBEDDINGS_CONCURRENCY),
        "EMBEDDINGS_TIMEOUT_S": str(LOCAL_EMBEDDINGS_TIMEOUT_S),
        "EMBEDDINGS_RPS": str(LOCAL_EMBEDDINGS_RPS),
    }


def index_settings(pg_port: int) -> dict[str, str]:
    dsn = f"postgresql://{LOCAL_PG_USER}:{LOCAL_PG_PASSWORD}@127.0.0.1:{pg_port}/{LOCAL_PG_DATABASE}"
    return {"VECTOR_DB_DSN": dsn}


def ocr_settings(server_url: str) -> dict[str, str]:
    """The local stand-in for Vision OCR's (devstack/ocr_server.py), at `server_url`."""
    return {
        "OCR_URL": f"{server_url}{OCR_PATH}",
        "OCR_OPERATIONS_URL": f"{server_url}{OPERATIONS_PATH}",
        "OCR_ENABLED": "true",
    }


def ocr_defaults(
    environ: Mapping[str, str], server_url: str | None, *, local_credentials: bool
) -> dict[str, str]:
    """OCR's settings this environment leaves to the local stack, unset names only: the stand-in's when
    one runs at `server_url`; without one, OCR off while the function has the local stack's placeholder
    key (Yandex's OCR would refuse it), so scans are parked as unreadable instead of retried."""
    chosen = {name for name, value in environ.items() if value}
    if chosen & set(OCR_CHOSEN):
        return {}
    if server_url is not None:
        defaults = ocr_settings(server_url)
    elif local_credentials:
        defaults = {"OCR_ENABLED": "false"}
    else:
        defaults = {}
    return {name: value for name, value in defaults.items() if name not in chosen}


def queue_settings(ymq_endpoint: str, queue_url: str) -> dict[str, str]:
    """The local Message Queue's: the function signs for it with the storage keys, as in the cloud."""
    return {"YMQ_ENDPOINT": ymq_endpoint, "QUEUE_URL": queue_url}


def local_environment(*, s3_port: int, embeddings_port: int, pg_port: int, bucket: str) -> dict[str, str]:
    """Every setting of the local stack: what `make run` gives its own function."""
    return {
        **storage_settings(s3_port, bucket),
        **embeddings_settings(embeddings_port),
        **index_settings(pg_port),
    }


def local_defaults(
    environ: Mapping[str, str], *, s3_port: int, embeddings_port: int, pg_port: int | None, bucket: str
) -> dict[str, str]:
    """The local stack's settings this environment leaves to it: group by group, unset names only.
    `pg_port` None: the running stack has no index (or none runs)."""
    chosen = {name for name, value in environ.items() if value}
    defaults: dict[str, str] = {}
    if not chosen & set(STORAGE_CHOSEN):
        defaults |= storage_settings(s3_port, bucket)
        if pg_port is not None and not chosen & set(INDEX_CHOSEN):
            defaults |= index_settings(pg_port)
    if not chosen & set(EMBEDDINGS_CHOSEN):
        defaults |= embeddings_settings(embeddings_port)
    return {name: value for name, value in defaults.items() if name not in chosen}


def uses_local_storage(environ: Mapping[str, str]) -> bool:
    return not any(environ.get(name) for name in STORAGE_CHOSEN)


def uses_local_embeddings(environ: Mapping[str, str]) -> bool:
    return not any(environ.get(name) for name in EMBEDDINGS_CHOSEN)
