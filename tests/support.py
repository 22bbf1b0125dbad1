"""Test helpers: the suite's settings, sample events from tests/events/, its invocation context and
HTTP events (built by devstack's builders, as every local caller builds them), a call through the router,
and reads of what a bucket holds."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

from devstack.context import LocalContext
from devstack.events import HttpShape, http_event
from devstack.s3server import S3Server
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import Settings, load_settings
from handlers import dispatch

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = Path(__file__).parent / "events"


def run_python(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """This interpreter with `args` (`-m embedpipe ...`, `-c script`) in the project's folder, as a user
    runs it: the environment given, output captured as text, the exit status left to the test."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def settings_for(s3: S3Server, **overrides: Any) -> Settings:
    """Settings pointing at the test S3 server, a fast rate, small chunks; overrides win. METRICS is
    off: tests/test_metrics.py turns it on against a fake Monitoring, where it is the point."""
    values: dict[str, Any] = {
        "yc_folder_id": "b1gtest",
        "s3_endpoint": s3.endpoint,
        "aws_access_key_id": s3.access_key,
        "aws_secret_access_key": s3.secret_key,
        "yc_api_key": "AQVNtest-api-key-for-fake-server",
        "embeddings_rps": 1000,
        "chunk_max_tokens": 120,
        "metrics": False,
        # Tests reach only loopback: a test that reads scans points these at its OCR emulator.
        "ocr_url": "http://127.0.0.1:9/ocr/v1",
        "ocr_operations_url": "http://127.0.0.1:9/operations",
    }
    values.update(overrides)
    return load_settings(**values)


class RuntimeFactory(Protocol):
    """The `make_runtime` fixture: a function instance per call, closed when the test ends."""

    def __call__(self, *, transports: Transports | None = None, **setting_overrides: Any) -> Runtime: ...


def load_event(name: str, *, bucket: str | None = None, keys: list[str] | None = None) -> dict[str, Any]:
    """A sample event by file name (without .json); storage events can be pointed at another bucket/keys.

    With several `keys`, the first message is repeated once per key: a batch.
    """
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    if bucket is None and keys is None:
        return event
    template = event["messages"][0]
    messages = []
    for key in keys or [template["details"]["object_id"]]:
        message = copy.deepcopy(template)
        if bucket is not None:
            message["details"]["bucket_id"] = bucket
        message["details"]["object_id"] = key
        messages.append(message)
    event["messages"] = messages
    return event


def context(**overrides: Any) -> LocalContext:
    """The invocation context the suite passes: the platform's shape, a fixed request id, and a
    service account's IAM token (tests/secret_scan.py fails any test whose output shows it)."""
    values: dict[str, Any] = {
        "request_id": "req-0001",
        "token": {"access_token": "t1.context-token-secret-value", "expires_in": 42299},
    }
    return LocalContext(**{**values, **overrides})


def request_event(
    method: str, target: str, body: Any = None, *, key: str | None = "test-key-1", shape: HttpShape = "1.0"
) -> dict[str, Any]:
    """An HTTP event with a JSON body (a string goes as it is) and, unless None, this `X-Api-Key`."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    text = body if isinstance(body, str) else ("" if body is None else json.dumps(body, ensure_ascii=False))
    return http_event(method, target, headers, text, shape=shape)


async def object_keys(storage: ObjectStorage, bucket: str, prefix: str = "") -> list[str]:
    return [info.key async for info in storage.list_objects(bucket, prefix)]


async def read_json(storage: ObjectStorage, bucket: str, key: str) -> Any:
    """An object that must exist, parsed: a JSON document, or the list of records of a `.jsonl`."""
    data = await storage.get(bucket, key, max_bytes=10**8)
    assert data is not None, f"{key} is missing"
    return [json.loads(line) for line in data.splitlines()] if key.endswith(".jsonl") else json.loads(data)


async def call(
    runtime: Runtime, event: dict[str, Any], invocation_context: LocalContext | None = None
) -> tuple[int, Any]:
    reply = await dispatch(runtime, event, invocation_context or context())
    assert reply["headers"]["Content-Type"] == "application/json"
    assert reply["isBase64Encoded"] is False
    return reply["statusCode"], json.loads(reply["body"])
