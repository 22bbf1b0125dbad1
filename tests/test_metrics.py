"""Functional: each invocation's counters reach Yandex Monitoring's write API in one request, and a
write that fails never changes what the invocation answers.

Monitoring is faked with an httpx MockTransport (what was written, and any answer), a real loopback
server where time or the network matters (a timeout, a refused connection), and the local stack's
own stand-in (devstack/monitoring_server.py) with what `embedpipe status` shows of it. The rest of
the suite runs with METRICS=false (tests/support.py): there, metrics are beside the point.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.events import queue_event, storage_event, timer_event
from devstack.loopback import LoopbackServer
from devstack.monitoring_server import MonitoringServer, recent_totals
from devstack.running import RunningStack
from devstack.s3server import free_port
from embedding_pipeline.clients import monitoring
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.metrics import InvocationMetrics
from embedding_pipeline.runtime import Runtime, Transports
from embedpipe.services import point_at
from embedpipe.tools import status
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.support import RuntimeFactory, call, context, request_event

TOKEN = "t1.context-token-secret-value"  # tests/support.py's context carries it
Answer = Callable[[httpx.Request], httpx.Response]


def written(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"writtenMetricsCount": str(len(json.loads(request.content)["metrics"]))})


class FakeMonitoring:
    """The write API as a MockTransport handler: every request kept, answered by `answer`."""

    def __init__(self, answer: Answer = written) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def points(self, number: int = -1) -> dict[str, tuple[str, str, int]]:
        """One write's metrics: name → (trigger, bucket, value)."""
        body = json.loads(self.requests[number].content)
        assert all(metric["type"] == "DGAUGE" for metric in body["metrics"])
        return {
            metric["name"]: (metric["labels"]["trigger"], metric["labels"]["bucket"], metric["value"])
            for metric in body["metrics"]
        }


@pytest.fixture
def fake() -> FakeMonitoring:
    return FakeMonitoring()


@pytest.fixture
def metered(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, fake: FakeMonitoring, s3_bucket: str
) -> Runtime:
    """An instance with METRICS on, writing to the fake."""
    return make_runtime(
        transports=Transports(embeddings=api.transport, metrics=httpx.MockTransport(fake)),
        metrics=True,
        source_bucket=s3_bucket,
        http_api_keys="test-key-1",
    )


def warnings(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line["msg"] == "metrics_not_written"]


async def test_an_upload_writes_what_it_did_in_one_request(
    metered: Runtime, fake: FakeMonitoring, api: FakeEmbeddingsAPI, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, "incoming/a.md", "# A\n\nПервый документ. The first document.".encode())
    event = storage_event("ObjectCreate", s3_bucket, "incoming/a.md")

    await dispatch(metered, event, context())

    (request,) = fake.requests
    assert request.url.params["folderId"] == "b1gtest"
    assert request.url.params["service"] == "custom"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"  # the IAM token before the API key
    body = json.loads(request.content)
    assert body["labels"] == {"deployment": "embedding-pipeline-local"}
    assert body["ts"].endswith("Z")
    tokens = sum(len(text) // 4 or 1 for text in api.texts)
    assert fake.points() == {
        "documents_embedded": ("storage", s3_bucket, 1),
        "api_requests": ("storage", s3_bucket, api.requests),
        "tokens": ("storage", s3_bucket, tokens),
    }

    # The same event again: nothing to pay, one document unchanged.
    await dispatch(metered, event, context())
    assert fake.points() == {"documents_unchanged": ("storage", s3_bucket, 1)}


async def test_a_queue_batch_counts_each_document_once(
    metered: Runtime, fake: FakeMonitoring, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, "incoming/b.md", b"# B\n\nSecond.")
    await storage.put(s3_bucket, "incoming/bad.pdf", b"%PDF-1.7 not really a PDF")
    bodies = [json.dumps({"id": f"faq-{n}", "text": f"Answer {n}."}) for n in range(3)]
    bodies += [json.dumps({"key": "incoming/b.md"}), json.dumps({"key": "incoming/bad.pdf"})]

    await dispatch(metered, queue_event(*bodies), context())

    points = fake.points()
    assert points["documents_embedded"] == ("queue", s3_bucket, 4)
    assert points["documents_parked"] == ("queue", s3_bucket, 1)
    assert points["api_requests"] == ("queue", s3_bucket, 4)
    assert set(points) == {"documents_embedded", "documents_parked", "api_requests", "tokens"}


async def test_a_reconcile_tick_writes_what_it_found_and_repaired(
    metered: Runtime, fake: FakeMonitoring, storage: ObjectStorage, s3_bucket: str
) -> None:
    for name in ("kept", "changed", "deleted"):
        await storage.put(s3_bucket, f"incoming/{name}.md", f"# {name}\n\nText of {name}.".encode())
    await dispatch(metered, timer_event(None), context())
    first = fake.points()
    assert first.pop("tokens")[2] > 0
    assert first == {
        "reconcile_missing": ("timer", s3_bucket, 3),
        "documents_embedded": ("timer", s3_bucket, 3),
        "api_requests": ("timer", s3_bucket, 3),
    }
    await storage.put(s3_bucket, "incoming/new.md", b"# new\n\nA new document.")
    await storage.put(s3_bucket, "incoming/changed.md", b"# changed\n\nText of changed, edited.")
    await storage.delete(s3_bucket, "incoming/deleted.md")

    await dispatch(metered, timer_event(None), context())

    points = fake.points()
    for name, value in [
        ("reconcile_missing", 1),
        ("reconcile_stale", 1),
        ("reconcile_orphaned", 1),
        ("documents_embedded", 2),
        ("api_requests", 2),
    ]:
        assert points[name] == ("timer", s3_bucket, value), name


async def test_an_http_embeddings_call_is_about_no_bucket(
    metered: Runtime, fake: FakeMonitoring, api: FakeEmbeddingsAPI
) -> None:
    status_code, _ = await call(metered, request_event("POST", "/v1/embeddings", {"input": ["a", "b", "a"]}))
    assert status_code == 200
    assert fake.points() == {"api_requests": ("http", "none", 2), "tokens": ("http", "none", 2)}


async def test_a_continuation_is_counted(
    make_runtime: RuntimeFactory,
    api: FakeEmbeddingsAPI,
    fake: FakeMonitoring,
    storage: ObjectStorage,
    s3_bucket: str,
) -> None:
    queue = FakeMessageQueue()
    runtime = make_runtime(
        transports=Transports(
            embeddings=api.transport, queue=queue.transport, metrics=httpx.MockTransport(fake)
        ),
        metrics=True,
        source_bucket=s3_bucket,
        queue_url="https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs",
        embeddings_rps=10,
        embeddings_concurrency=2,  # few requests queued at the deadline: the work stops on time
        deadline_margin_s=1.25,
    )
    text = "\n\n".join(
        f"Paragraph {n} about revenue, growth and the quarter's customers." for n in range(300)
    )
    await storage.put(s3_bucket, "incoming/large.md", text.encode())

    # A 5 s invocation stops work at 3.75 s (checkpoints, hands over), and has time to write.
    reply = await dispatch(
        runtime, storage_event("ObjectCreate", s3_bucket, "incoming/large.md"), context(timeout_s=5.0)
    )

    assert reply["documents"][0]["outcome"] == "continued"
    points = fake.points()
    assert points["queue_continuations"] == ("storage", s3_bucket, 1)
    assert points["api_requests"][2] == api.requests > 0
    assert "documents_embedded" not in points


async def test_an_index_write_that_failed_is_counted(
    make_runtime: RuntimeFactory,
    api: FakeEmbeddingsAPI,
    fake: FakeMonitoring,
    storage: ObjectStorage,
    s3_bucket: str,
) -> None:
    runtime = make_runtime(
        transports=Transports(embeddings=api.transport, metrics=httpx.MockTransport(fake)),
        metrics=True,
        vector_db_dsn="postgresql://nobody@127.0.0.1:1/none",  # nothing listens there
    )
    await storage.put(s3_bucket, "incoming/c.md", b"# C\n\nThird.")

    reply = await dispatch(runtime, storage_event("ObjectCreate", s3_bucket, "incoming/c.md"), context())

    assert reply["documents"][0]["index"] == "pending"
    assert fake.points()["index_failures"] == ("storage", s3_bucket, 1)
    assert fake.points()["documents_embedded"] == ("storage", s3_bucket, 1)


async def test_nothing_happened_nothing_is_written(
    metered: Runtime, fake: FakeMonitoring, s3_bucket: str
) -> None:
    await dispatch(metered, storage_event("ObjectCreate", s3_bucket, "elsewhere/ignored.md"), context())
    await dispatch(metered, storage_event("ObjectDelete", s3_bucket, "incoming/never-there.md"), context())
    status_code, _ = await call(metered, request_event("GET", "/healthz"))
    assert status_code == 200
    assert fake.requests == []


async def test_metrics_off_writes_nothing(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, fake: FakeMonitoring
) -> None:
    runtime = make_runtime(
        transports=Transports(embeddings=api.transport, metrics=httpx.MockTransport(fake)),
        metrics=False,
        http_api_keys="test-key-1",
    )
    status_code, _ = await call(runtime, request_event("POST", "/v1/embeddings", {"input": "hello"}))
    assert status_code == 200
    assert fake.requests == []


class _Hanging(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        time.sleep(1.0)  # past the write's timeout (0.2 s in the test)
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def hanging() -> Iterator[str]:
    with LoopbackServer(_Hanging) as server:
        yield server.url + "/monitoring/v2/data/write"


def _raise_bug(_request: httpx.Request) -> httpx.Response:
    raise RuntimeError("a bug in the transport")


FAILING_ANSWERS: dict[str, Answer] = {
    "500": lambda _request: httpx.Response(500, json={"errorMessage": "internal error"}),
    "403": lambda _request: httpx.Response(403, json={"message": "Permission denied"}),
    "not JSON": lambda _request: httpx.Response(200, text="<html>gateway</html>"),
    "an error message": lambda _request: httpx.Response(200, json={"errorMessage": "bad label"}),
    "fewer written": lambda _request: httpx.Response(200, json={"writtenMetricsCount": "1"}),
    "a bug": _raise_bug,
}


@pytest.mark.parametrize("failure", [*FAILING_ANSWERS, "timeout", "connection refused"])
async def test_a_failed_write_leaves_the_reply_as_it_was_and_warns_once(
    make_runtime: RuntimeFactory,
    api: FakeEmbeddingsAPI,
    hanging: str,
    failure: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(monitoring, "TIMEOUT_S", 0.2)
    request = request_event("POST", "/v1/embeddings", {"input": ["привет", "hello"]})
    quiet = make_runtime(metrics=False, http_api_keys="test-key-1")
    expected = await dispatch(quiet, request, context())
    if failure in FAILING_ANSWERS:
        failing = FakeMonitoring(FAILING_ANSWERS[failure])
        transports = Transports(embeddings=api.transport, metrics=httpx.MockTransport(failing))
        runtime = make_runtime(transports=transports, metrics=True, http_api_keys="test-key-1")
    else:
        url = hanging if failure == "timeout" else f"http://127.0.0.1:{free_port()}/write"
        runtime = make_runtime(metrics=True, metrics_url=url, http_api_keys="test-key-1")
    capsys.readouterr()

    started = time.monotonic()
    reply = await dispatch(runtime, request, context())

    assert time.monotonic() - started < 1.0
    assert reply == expected
    output = capsys.readouterr().out
    (warning,) = warnings(output)
    assert warning["level"] == "WARN"
    assert warning["stream_name"] == "http"
    assert warning["points"] == 2
    assert TOKEN not in output


async def test_after_a_timeout_the_instance_pauses_its_writes(
    make_runtime: RuntimeFactory,
    hanging: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(monitoring, "TIMEOUT_S", 0.2)
    runtime = make_runtime(metrics=True, metrics_url=hanging, http_api_keys="test-key-1")
    request = request_event("POST", "/v1/embeddings", {"input": "hello"})
    await dispatch(runtime, request, context())

    started = time.monotonic()
    await dispatch(runtime, request, context())

    assert time.monotonic() - started < 0.2  # no second wait for a Monitoring that does not answer
    first, second = warnings(capsys.readouterr().out)
    assert first["reason"] == "TimeoutError: no answer in time"
    assert second["reason"].startswith("paused for")


async def test_a_refusal_that_echoes_the_token_never_logs_it(
    make_runtime: RuntimeFactory, api: FakeEmbeddingsAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"errorMessage": f"bad token: {request.headers['Authorization']}"})

    transports = Transports(embeddings=api.transport, metrics=httpx.MockTransport(FakeMonitoring(echo)))
    runtime = make_runtime(transports=transports, metrics=True, http_api_keys="test-key-1")

    await dispatch(runtime, request_event("POST", "/v1/embeddings", {"input": "hello"}), context())

    output = capsys.readouterr().out
    (warning,) = warnings(output)
    assert warning["reason"] == "Monitoring answered 401: bad token: Bearer ***"
    assert "context-token-secret-value" not in output


async def test_no_time_left_skips_the_write(
    metered: Runtime, fake: FakeMonitoring, capsys: pytest.CaptureFixture[str]
) -> None:
    await dispatch(
        metered, request_event("POST", "/v1/embeddings", {"input": "hello"}), context(timeout_s=0.4)
    )
    assert fake.requests == []
    (warning,) = warnings(capsys.readouterr().out)
    assert warning["reason"] == "no time left before the function's timeout"


async def test_an_api_key_is_used_when_there_is_no_iam_token(metered: Runtime, fake: FakeMonitoring) -> None:
    await dispatch(metered, request_event("POST", "/v1/embeddings", {"input": "hello"}), context(token=None))
    assert fake.requests[0].headers["Authorization"] == "Api-Key AQVNtest-api-key-for-fake-server"


def test_the_api_use_goes_to_the_bucket_the_invocation_worked_on() -> None:
    metrics = InvocationMetrics("queue")
    assert metrics.bucket == "none"
    metrics.about("docs")
    metrics.about("docs")
    assert metrics.bucket == "docs"
    metrics.about("other")
    assert metrics.bucket == "several"
    metrics.add("documents_embedded", "docs", 0)
    metrics.add_findings("docs", {"missing": 2, "sources": 10, "orphaned": 0})
    assert [(p.name, p.bucket, p.value) for p in metrics.points()] == [("reconcile_missing", "docs", 2)]


async def test_the_local_stand_in_keeps_the_writes_and_status_shows_the_last_hour(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "metrics.jsonl"
    with MonitoringServer(path) as server:
        runtime = make_runtime(metrics=True, metrics_url=server.url, source_bucket=s3_bucket)
        for name in ("a", "b"):
            await storage.put(s3_bucket, f"incoming/{name}.md", f"# {name}\n\nText {name}.".encode())
            await dispatch(
                runtime, storage_event("ObjectCreate", s3_bucket, f"incoming/{name}.md"), context()
            )
        refused = httpx.post(
            server.url, params={"folderId": "b1g", "service": "custom"}, json={"metrics": []}
        )
        assert (refused.status_code, refused.json()) == (401, {"errorMessage": "no Authorization header"})

        writes = server.writes()
        assert len(writes) == 2
        assert writes[0]["folderId"] == "b1gtest"
        totals = recent_totals(path)
        assert totals is not None
        assert totals["writes"] == 2
        assert totals["totals"]["documents_embedded"] == {"total": 2, "storage": 2}
        assert recent_totals(path, now=time.time() + 7200) is None  # nothing in the last hour then

        capsys.readouterr()
        invocation = await runtime.open_invocation(context())
        assert await status(invocation, s3_bucket, metrics=path) == 0
    output = capsys.readouterr().out
    shown, _ = json.JSONDecoder().raw_decode(output, output.index("{\n"))  # the log lines are single
    assert shown["manifests"] == 2
    assert shown["metrics_last_hour"]["totals"]["documents_embedded"]["total"] == 2
    assert shown["metrics_last_hour"]["last_write"]["labels"] == {"deployment": "embedding-pipeline-local"}


def test_embedpipe_on_the_local_bucket_writes_to_the_stand_in_or_nowhere(tmp_path: Path) -> None:
    """`embedpipe invoke` runs index.handler: never against the real Monitoring with a local bucket."""
    url = "http://127.0.0.1:18556/monitoring/v2/data/write"
    RunningStack(os.getpid(), 18333, 18555, 18080, "b", metrics_url=url).write(tmp_path)
    with_stack = {"LOCAL_DATA_DIR": str(tmp_path)}
    point_at(with_stack, needs_storage=False, needs_embeddings=False)
    assert with_stack["METRICS_URL"] == url
    assert "METRICS" not in with_stack

    alone = {"LOCAL_DATA_DIR": str(tmp_path / "none")}
    point_at(alone, needs_storage=False, needs_embeddings=False)
    assert alone["METRICS"] == "false"

    real = {"LOCAL_DATA_DIR": str(tmp_path), "S3_ENDPOINT": "https://storage.yandexcloud.net"}
    point_at(real, needs_storage=False, needs_embeddings=False)
    assert "METRICS" not in real
    assert "METRICS_URL" not in real
