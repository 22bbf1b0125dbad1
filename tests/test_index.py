"""Functional: the real entry point `index.handler` in a fresh interpreter, as the runtime imports it.

SeaweedFS holds the bucket; the embeddings API is the loopback Yandex emulator. The IAM token arrives
in `context.token`, as in the cloud, and must never appear in the output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.events import http_event
from devstack.monitoring_server import MonitoringServer
from embedding_pipeline.clients.storage import ObjectStorage
from testkit.yandex_emulator import YandexEmulator
from tests.seaweed import S3Server
from tests.support import ROOT, load_event, run_python

TOKEN = "t1.9euelZqKj5Wdk5KZx5CdlM2Rlp6Zlu3rnpWajJqTm5yNx8uWz56Yzc6emJTl8-secret"
# One instance, warm after its first event: each event of the file goes to the same imported index,
# with the context every local caller passes, carrying the IAM token as the platform does.
INVOKE = """
import json, sys
import index
from devstack.context import iam_token_context

events_path, token, request_id = sys.argv[1:]
for event in json.loads(open(events_path).read()):
    context = iam_token_context(token, timeout_s=60)
    context.request_id = request_id
    print("REPLY " + json.dumps(index.handler(event, context)), flush=True)
"""


@pytest.fixture
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator() as running:
        yield running


def function_env(**values: str) -> dict[str, str]:
    """The shell without the function's settings, and METRICS off unless `values` turn it on."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("YC_", "EMBEDDINGS_", "AWS_", "S3_", "METRICS"))
    }
    return env | {"METRICS": "false"} | values


def run_index(env: dict[str, str], *args: str, script: str = INVOKE) -> subprocess.CompletedProcess[str]:
    return run_python("-c", script, *args, env=env)


def invoke(
    env: dict[str, str], events: list[dict[str, Any]], tmp_path: Path, *, request_id: str
) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    """The events through INVOKE; the finished process and the handler's replies."""
    events_path = tmp_path / "events.json"
    events_path.write_text(json.dumps(events))
    result = run_index(env, str(events_path), TOKEN, request_id)
    replies = [json.loads(line[6:]) for line in result.stdout.splitlines() if line.startswith("REPLY ")]
    return result, replies


def test_bad_configuration_fails_at_import_naming_the_variable() -> None:
    result = run_index(function_env(EMBEDDINGS_RPS="-3", YC_FOLDER_ID="b1g"), script="import index")
    assert result.returncode != 0
    fatal = json.loads(result.stdout.splitlines()[0])
    assert fatal["level"] == "FATAL"
    assert "EMBEDDINGS_RPS" in fatal["reason"]
    assert "ConfigurationError" in result.stderr


async def test_upload_event_through_index_handler(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator, tmp_path: Path
) -> None:
    key = "incoming/Отчёт о продажах.md"
    await storage.put(s3_bucket, key, "# Продажи\n\nВыручка выросла на 12%.\n\nSales grew 12%.".encode())
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[key])
    with MonitoringServer(tmp_path / "metrics.jsonl") as monitoring:
        env = function_env(
            YC_FOLDER_ID="b1gtest",
            EMBEDDINGS_URL=emulator.url,
            S3_ENDPOINT=s3_server.endpoint,
            AWS_ACCESS_KEY_ID=s3_server.access_key,
            AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
            METRICS="true",
            METRICS_URL=monitoring.url,
        )

        # a warm instance serves the second delivery with the same pools and loop
        result, replies = invoke(env, [event, event], tmp_path, request_id="req-index-1")

    assert result.returncode == 0, result.stderr
    assert [reply["documents"][0]["outcome"] for reply in replies] == ["embedded", "unchanged"]
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    summaries = [line for line in logs if line["msg"] == "invocation_done"]
    assert len(summaries) == 2
    assert summaries[0]["api_requests"] == emulator.stats.ok > 0
    assert summaries[0]["chunks"] == replies[0]["documents"][0]["chunks"]
    assert summaries[1]["api_requests"] == 0
    assert all(line["request_id"] == "req-index-1" for line in summaries)
    # The invocations' lines in the storage stream; the cold start's (no request yet) in `unknown`.
    assert {line["stream_name"] for line in logs if line.get("request_id")} == {"storage"}
    assert {line["stream_name"] for line in logs if not line.get("request_id")} == {"unknown"}
    # Each invocation's counters, written with the invocation's IAM token (its scheme is kept).
    written = [(write["authorization"], write["metrics"]) for write in monitoring.writes()]
    unchanged = {"name": "documents_unchanged", "type": "DGAUGE", "value": 1}
    assert written[1] == ("Bearer", [unchanged | {"labels": {"trigger": "storage", "bucket": s3_bucket}}])
    assert written[0][0] == "Bearer"
    assert {metric["name"]: metric["value"] for metric in written[0][1]} == {
        "documents_embedded": 1,
        "api_requests": emulator.stats.ok,
        "tokens": summaries[0]["tokens"],
    }
    assert TOKEN not in result.stdout + result.stderr
    assert s3_server.secret_key not in result.stdout + result.stderr
    manifest = await storage.get(s3_bucket, f"embeddings/{key}.manifest.json", max_bytes=10**6)
    assert manifest is not None
    assert json.loads(manifest)["model"] == "emb://b1gtest/text-search-doc/latest"


def test_unknown_event_is_answered_not_raised() -> None:
    script = "import index; print('REPLY', index.handler({'hello': 'world'}, None))"
    result = run_index(function_env(YC_FOLDER_ID="b1g"), script=script)
    assert result.returncode == 0, result.stderr
    assert "REPLY {'error': 'unrecognised event', 'top_level_keys': ['hello']}" in result.stdout
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    unrecognised = [line for line in logs if line["msg"] == "event_unrecognised"]
    assert [(line["level"], line["top_level_keys"]) for line in unrecognised] == [("ERROR", ["hello"])]
    # No HTTP_API_KEYS, but no HTTP event either: nothing to warn about (see the next test).
    assert "http_api_keys_unset" not in result.stdout


def test_an_instance_open_over_http_warns_once(tmp_path: Path) -> None:
    """No HTTP_API_KEYS: the first HTTP event says the function must stay private; the second, and
    every storage, queue or timer event (an `embedpipe invoke`, a trigger), do not repeat it."""
    events = [
        {"hello": "world"},
        http_event("GET", "/healthz", shape="direct"),
        http_event("GET", "/healthz", shape="direct"),
    ]
    result, replies = invoke(function_env(YC_FOLDER_ID="b1g"), events, tmp_path, request_id="req-open")
    assert result.returncode == 0, result.stderr
    assert len(replies) == 3
    logs = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    warned = [line for line in logs if line["msg"] == "http_api_keys_unset"]
    assert [(line["level"], line["stream_name"]) for line in warned] == [("WARN", "http")]


def test_index_imports_with_only_the_function_requirements(tmp_path: Path) -> None:
    """`python -c "import index"` in a venv that has only requirements.txt (what the runtime installs)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements.txt")],
        check=True,
        timeout=600,
    )
    result = subprocess.run(
        [str(python), "-c", "import index; print(index.runtime.settings.embeddings_url)"],
        cwd=ROOT,
        env=function_env(YC_FOLDER_ID="b1g"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "https://ai.api.cloud.yandex.net/v1"


def test_http_events_through_index_handler(emulator: YandexEmulator, tmp_path: Path) -> None:
    env = function_env(YC_FOLDER_ID="b1gtest", EMBEDDINGS_URL=emulator.url, HTTP_API_KEYS="k1,k2")
    texts = json.dumps({"input": ["привет", "hello"]})
    events = [
        http_event("GET", "/healthz", shape="direct"),
        http_event("POST", "/v1/embeddings", {"X-Api-Key": "k1"}, texts, shape="1.0"),
        http_event("POST", "/v1/embeddings", {}, "{}", shape="1.0"),
    ]
    result, replies = invoke(env, events, tmp_path, request_id="req-http-1")
    assert result.returncode == 0, result.stderr
    assert [reply["statusCode"] for reply in replies] == [200, 200, 401]
    body = json.loads(replies[1]["body"])
    assert [len(item["embedding"]) for item in body["data"]] == [256, 256]
    assert emulator.stats.ok == 2
    assert TOKEN not in result.stdout + result.stderr
    assert "http_api_keys_unset" not in result.stdout


IMPORTED_AT_COLD_START = """
import sys
import index
import handlers
handlers.adapter_for("http")
ours = ("handlers", "embedding_pipeline", "pydantic_settings")
print(" ".join(sorted(m for m in sys.modules if m.startswith(ours))))
"""


def test_cold_start_imports_only_what_the_first_event_needs() -> None:
    """Adapters load with their first event; the HTTP embeddings route never loads document parsing."""
    result = run_index(function_env(YC_FOLDER_ID="b1gtest"), script=IMPORTED_AT_COLD_START)
    assert result.returncode == 0, result.stderr
    modules = set(result.stdout.split())
    assert {"handlers.http", "handlers.http.router", "embedding_pipeline.settings"} <= modules
    other_adapters = {
        "handlers.storage",
        "handlers.queue",
        "handlers.timer",
        "embedding_pipeline.pipeline.reconcile",
    }
    assert not other_adapters & modules
    assert not any(
        m.startswith(("embedding_pipeline.stages.documents", "pydantic_settings")) for m in modules
    )


def test_a_configured_index_costs_the_embeddings_route_no_import(emulator: YandexEmulator) -> None:
    """asyncpg loads with the first query of the index, not at cold start nor for /v1/embeddings."""
    script = """
import sys
import index
from devstack.context import iam_token_context
from devstack.events import http_event
event = http_event("POST", "/v1/embeddings", {}, '{"input": "hi"}', shape="1.0")
reply = index.handler(event, iam_token_context("t1.cold-start-test"))
print(reply["statusCode"], "asyncpg" in sys.modules)
"""
    env = function_env(
        YC_FOLDER_ID="b1gtest",
        EMBEDDINGS_URL=emulator.url,
        VECTOR_DB_DSN="postgresql://nobody@127.0.0.1:1/none",
    )
    result = run_index(env, script=script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["200", "False"]
