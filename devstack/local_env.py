"""The settings that point the function at the local stack: the only difference from the cloud."""

from __future__ import annotations

import os

from devstack.embedder import DIMENSIONS
from devstack.s3server import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

DEFAULT_S3_PORT = 8333
DEFAULT_EMBEDDINGS_PORT = 8555
DEFAULT_HTTP_PORT = 8080
DEFAULT_BUCKET = "local-docs"


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def local_environment(
    *,
    s3_port: int | None = None,
    embeddings_port: int | None = None,
    bucket: str | None = None,
) -> dict[str, str]:
    s3_port = s3_port or port("LOCAL_S3_PORT", DEFAULT_S3_PORT)
    embeddings_port = embeddings_port or port("LOCAL_EMBEDDINGS_PORT", DEFAULT_EMBEDDINGS_PORT)
    return {
        "YC_FOLDER_ID": "local",
        "EMBEDDINGS_URL": f"http://127.0.0.1:{embeddings_port}/v1",
        "EMBEDDINGS_DIMENSIONS": str(DIMENSIONS),
        "YC_API_KEY": "local-no-key-needed",
        "S3_ENDPOINT": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_KEY,
        "SOURCE_BUCKET": bucket or os.environ.get("LOCAL_BUCKET", DEFAULT_BUCKET),
    }


def apply_local_environment(**overrides: int | str | None) -> None:
    """Fill in the local stack's settings, keeping anything the user set explicitly."""
    for name, value in local_environment(**overrides).items():  # type: ignore[arg-type]
        os.environ.setdefault(name, value)
