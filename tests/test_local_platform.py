"""Functional: the local platform's parts (devstack) against SeaweedFS: function instances side by
side, stopping them, the ports a stack needs, how `embedpipe` finds a running stack, and which local
settings fill in what the user left unset."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import CancelledError, Future
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.context import LocalContext
from devstack.events import http_event, storage_event
from devstack.instances import FunctionInstances
from devstack.local_env import local_defaults, local_environment
from devstack.running import RunningStack, StackError, find_running, forget, require_free_ports
from devstack.s3server import free_port
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.runtime import Transports
from embedding_pipeline.settings import Settings
from tests.fakes import FakeEmbeddingsAPI
from tests.seaweed import S3Server
from tests.support import object_keys, settings_for

DOCUMENT = "\n\n".join(f"Paragraph {n}: " + "words of the document " * 20 for n in range(30))


class GatedAPI:
    """The fake embeddings API, answering `free` requests and holding every later one until opened."""

    def __init__(self, free: int = 0) -> None:
        self.api = FakeEmbeddingsAPI()
        self.free = free
        self.holding = threading.Event()
        self.gate = threading.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.free > 0:
            self.free -= 1
        else:
            self.holding.set()
            await asyncio.to_thread(self.gate.wait, 60)
        return self.api(request)

    @property
    def transports(self) -> Transports:
        return Transports(embeddings=httpx.MockTransport(self))


@asynccontextmanager
async def running(settings: Settings, api: GatedAPI, size: int) -> AsyncIterator[FunctionInstances]:
    instances = FunctionInstances(settings, size=size, transports=api.transports)
    try:
        yield instances
    finally:
        api.gate.set()
        await asyncio.to_thread(instances.close)


async def hold_an_instance(
    instances: FunctionInstances, api: GatedAPI, storage: ObjectStorage, bucket: str
) -> Future[dict[str, Any]]:
    """A long document's upload, delivered and held inside the API: it occupies one instance."""
    await storage.put(bucket, "incoming/long.md", DOCUMENT.encode())
    upload = instances.submit(storage_event("ObjectCreate", bucket, "incoming/long.md"), LocalContext())
    assert await asyncio.to_thread(api.holding.wait, 10)
    return upload


async def test_a_long_invocation_holds_one_instance_while_the_others_answer(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    api = GatedAPI()
    async with running(settings_for(s3_server, source_bucket=s3_bucket), api, size=2) as instances:
        upload = await hold_an_instance(instances, api, storage, s3_bucket)

        started = time.monotonic()
        reply = await asyncio.to_thread(instances.invoke, http_event("GET", "/healthz"), LocalContext())
        assert reply["statusCode"] == 200
        assert time.monotonic() - started < 5
        assert not upload.done()

        api.gate.set()
        outcome = await asyncio.to_thread(upload.result, 30)
        assert outcome["documents"][0]["outcome"] == "embedded"


async def test_stopping_cancels_a_running_invocation_which_keeps_what_it_paid_for(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    api = GatedAPI(free=3)
    settings = settings_for(s3_server, source_bucket=s3_bucket, embeddings_concurrency=1)
    async with running(settings, api, size=1) as instances:
        upload = await hold_an_instance(instances, api, storage, s3_bucket)
        queued = instances.submit(http_event("GET", "/healthz"), LocalContext())

        started = time.monotonic()
        await asyncio.to_thread(instances.close)
        assert time.monotonic() - started < 5  # not the minute the held request would take
    assert isinstance(upload.exception(timeout=1), asyncio.CancelledError)
    with pytest.raises(CancelledError):
        queued.result(timeout=1)  # a queued event is dropped, not served after the stop
    checkpoint = await object_keys(storage, s3_bucket, "embeddings/_checkpoints/")
    assert len(checkpoint) == 1
    assert checkpoint[0].startswith("embeddings/_checkpoints/incoming/long.md/")
    assert checkpoint[0].endswith("-000001.jsonl")
    saved = await storage.get(s3_bucket, checkpoint[0], max_bytes=10**6)
    assert saved is not None
    assert saved.count(b"\n") == 3  # the three vectors paid for before the stop


async def test_an_invocation_s_time_starts_when_an_instance_takes_it_not_while_it_waits(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    api = GatedAPI()
    async with running(settings_for(s3_server, source_bucket=s3_bucket), api, size=1) as instances:
        upload = await hold_an_instance(instances, api, storage, s3_bucket)
        request = http_event("POST", "/v1/embeddings", {}, '{"input": "hello"}')
        waiting = instances.submit(request, LocalContext(timeout_s=2))  # the one instance is busy
        await asyncio.sleep(2.5)  # longer than the request's whole timeout
        api.gate.set()
        reply = await asyncio.to_thread(waiting.result, 30)
        assert reply["statusCode"] == 200, reply["body"]  # not 503 out_of_time: its 2 s began just now
        await asyncio.to_thread(upload.result, 30)


def test_a_delivery_that_raised_is_retried_as_a_trigger_retries_then_dropped(
    s3_server: S3Server, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = settings_for(s3_server, s3_endpoint=f"http://127.0.0.1:{free_port()}")
    instances = FunctionInstances(unreachable, size=1)
    printed = ""
    try:
        event = storage_event("ObjectCreate", "docs", "incoming/a.md")
        instances.trigger(event, attempts=3, retry_after_s=0.05)
        deadline = time.monotonic() + 30
        while printed.count("local_delivery_failed") < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            printed += capsys.readouterr().out
    finally:
        instances.close()
    lines = [json.loads(line) for line in printed.splitlines() if "local_delivery_failed" in line]
    assert [line["retries_left"] for line in lines] == [2, 1, 0]
    assert all("StorageError" in line["error"] for line in lines)


def test_a_taken_port_is_refused_with_the_setting_that_names_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {taken} \(LOCAL_HTTP_PORT\) already in use") as refused:
            require_free_ports({"LOCAL_S3_PORT": 0, "LOCAL_HTTP_PORT": taken})
        assert f"LOCAL_HTTP_PORT={taken + 1} make run" in str(refused.value)
    require_free_ports({"LOCAL_HTTP_PORT": taken})  # free again once the listener is gone


def test_every_taken_port_is_named_at_once_with_one_command_that_frees_them_all() -> None:
    """A second `make run` beside a first: one message, one command, not one retry per port."""
    with contextlib.ExitStack() as listeners:
        taken: list[int] = []
        for _ in range(3):
            listener = listeners.enter_context(socket.socket())
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            taken.append(listener.getsockname()[1])
        names = ["LOCAL_S3_PORT", "LOCAL_PG_PORT", "LOCAL_HTTP_PORT"]
        with pytest.raises(StackError) as refused:
            require_free_ports(dict(zip(names, taken, strict=True)))
        message = str(refused.value)
        assert message.startswith(
            f"ports {taken[0]} (LOCAL_S3_PORT), {taken[1]} (LOCAL_PG_PORT), {taken[2]} (LOCAL_HTTP_PORT)"
        )
        command = message.rsplit(": ", 1)[1]
        assert command.endswith(" make run")
        moved = dict(pair.split("=") for pair in command.removesuffix(" make run").split())
        assert sorted(moved) == sorted(names)
        proposed = [int(port) for port in moved.values()]
        assert len(set(proposed) | set(taken)) == 6  # distinct, and none of the taken ones
        require_free_ports(dict(zip(names, proposed, strict=True)))  # the command would start


def test_a_running_stack_is_found_by_its_file_and_a_stopped_one_is_not(tmp_path: Path) -> None:
    assert find_running(tmp_path) is None
    alive = RunningStack(os.getpid(), s3_port=18333, embeddings_port=18555, http_port=18080, bucket="b")
    alive.write(tmp_path)
    assert find_running(tmp_path) == alive
    gone = RunningStack(_pid_of_finished_process(), 1, 2, 3, "b")
    gone.write(tmp_path)
    assert find_running(tmp_path) is None
    forget(tmp_path)
    assert not (tmp_path / "stack.json").exists()


def _pid_of_finished_process() -> int:
    process = subprocess.Popen(["true"])  # a process that is certainly gone
    process.wait()
    return process.pid


def defaults_for(environ: dict[str, str]) -> dict[str, str]:
    return local_defaults(environ, s3_port=8333, embeddings_port=8555, pg_port=8432, bucket="local-docs")


def test_with_nothing_set_every_local_setting_applies() -> None:
    assert defaults_for({}) == local_environment(
        s3_port=8333, embeddings_port=8555, pg_port=8432, bucket="local-docs"
    )
    assert defaults_for({})["VECTOR_DB_DSN"].endswith("@127.0.0.1:8432/vectors")


def test_a_users_index_or_bucket_gets_no_local_index() -> None:
    """An index mirrors one bucket: a real bucket never gets the laptop's index, nor a DSN of the
    user's own replaced."""
    assert "VECTOR_DB_DSN" not in defaults_for({"S3_ENDPOINT": "https://storage.yandexcloud.net"})
    assert "VECTOR_DB_DSN" not in defaults_for({"VECTOR_DB_DSN": "postgresql://me@db/x"})
    no_index = local_defaults({}, s3_port=8333, embeddings_port=8555, pg_port=None, bucket="b")
    assert "VECTOR_DB_DSN" not in no_index


@pytest.mark.parametrize("chosen", ["YC_IAM_TOKEN", "YC_API_KEY", "EMBEDDINGS_URL"])
def test_a_users_embeddings_api_gets_none_of_the_local_models_settings(chosen: str) -> None:
    defaults = defaults_for({chosen: "set-by-the-user", "YC_FOLDER_ID": "b1gmine"})
    for name in (
        "EMBEDDINGS_URL",
        "EMBEDDINGS_DIMENSIONS",
        "YC_API_KEY",
        "YC_FOLDER_ID",
        "EMBEDDINGS_CONCURRENCY",
    ):
        assert name not in defaults
    assert defaults["S3_ENDPOINT"] == "http://127.0.0.1:8333"  # the bucket can still be the local one


@pytest.mark.parametrize("chosen", ["S3_ENDPOINT", "AWS_ACCESS_KEY_ID"])
def test_a_users_bucket_gets_none_of_the_local_storage_settings(chosen: str) -> None:
    defaults = defaults_for({chosen: "set-by-the-user"})
    for name in ("S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SOURCE_BUCKET"):
        assert name not in defaults
    assert defaults["EMBEDDINGS_URL"] == "http://127.0.0.1:8555/v1"


def test_a_setting_the_user_gave_is_never_replaced() -> None:
    defaults = defaults_for({"SOURCE_BUCKET": "my-bucket", "EMBEDDINGS_DIMENSIONS": "384"})
    assert "SOURCE_BUCKET" not in defaults
    assert "EMBEDDINGS_DIMENSIONS" not in defaults
    assert defaults["S3_ENDPOINT"] == "http://127.0.0.1:8333"
