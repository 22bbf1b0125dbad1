"""Test helpers: sample events from tests/events/ and a context shaped like the Python runtime's."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.s3server import S3Server
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import Settings, load_settings
from handlers import dispatch

EVENTS_DIR = Path(__file__).parent / "events"


def settings_for(s3: S3Server, **overrides: Any) -> Settings:
    """Settings pointing at the test S3 server, a fast rate, small chunks; overrides win."""
    values: dict[str, Any] = {
        "yc_folder_id": "b1gtest",
        "s3_endpoint": s3.endpoint,
        "aws_access_key_id": s3.access_key,
        "aws_secret_access_key": s3.secret_key,
        "yc_api_key": "AQVNtest-api-key-for-fake-server",
        "embeddings_rps": 1000,
        "chunk_max_tokens": 120,
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


@dataclass
class FakeContext:
    """What Yandex's Python runtime passes as `context` (attributes and the remaining-time method)."""

    request_id: str = "req-0001"
    function_name: str = "embedding-pipeline"
    function_version: str = "v1"
    function_folder_id: str = "b1gfolder"
    memory_limit_in_mb: int = 256
    timeout_s: float = 600.0
    token: dict[str, Any] | None = field(
        default_factory=lambda: {"access_token": "t1.context-token-secret-value", "expires_in": 42299}
    )
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline_ms(self) -> int:
        return int((time.time() + self.timeout_s) * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_s - (time.monotonic() - self.started)) * 1000)


def request_event(
    method: str, path: str, body: Any = None, *, key: str | None = "test-key-1", shape: str = "1.0"
) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-Api-Key"] = key
    text = body if isinstance(body, str) else ("" if body is None else json.dumps(body, ensure_ascii=False))
    event: dict[str, Any] = {"httpMethod": method, "headers": headers, "body": text, "isBase64Encoded": False}
    if shape == "1.0":
        event.update({"version": "1.0", "resource": "/{proxy+}", "path": path})
    elif shape == "0.1":
        event.update({"url": path, "path": "/{proxy+}", "params": {}, "pathParams": {}})
    else:
        event.update({"url": "", "queryStringParameters": {"path": path}})
    return event


async def call(runtime: Runtime, event: dict[str, Any]) -> tuple[int, Any]:
    reply = await dispatch(runtime, event, FakeContext())
    assert reply["headers"]["Content-Type"] == "application/json"
    assert reply["isBase64Encoded"] is False
    return reply["statusCode"], json.loads(reply["body"])
