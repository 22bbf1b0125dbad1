"""Functional: every request to AI Studio asks it not to log the customer's data
(`x-data-logging-enabled: false`), on every path: an upload, a queue message, the HTTP embeddings
API, a search's query, a reconcile tick, a canary, a retry. `YC_DATA_LOGGING=true` lets Yandex
keep its logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.events import timer_event
from devstack.pgserver import PgServer
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import EmbeddingsModelError
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.support import RuntimeFactory, call, context, load_event, request_event

ROOT = Path(__file__).resolve().parent.parent
TEXT = "# Leave\n\nEmployees take 28 days of paid leave a year.\n\nRequests go to the HR portal."


@pytest.fixture
def emulator() -> Iterator[YandexEmulator]:
    with YandexEmulator(EmulatorConfig(rps=10**6)) as running:
        yield running


def instance(make_runtime: RuntimeFactory, emulator: YandexEmulator, bucket: str, **settings: Any) -> Runtime:
    return make_runtime(
        source_bucket=bucket, embeddings_url=emulator.url, transports=Transports(), **settings
    )


async def upload(runtime: Runtime, storage: ObjectStorage, bucket: str) -> dict[str, Any]:
    await storage.put(bucket, "incoming/leave.md", TEXT.encode())
    reply: dict[str, Any] = await dispatch(
        runtime, load_event("storage_object_create", bucket=bucket, keys=["incoming/leave.md"]), context()
    )
    return reply


async def test_an_upload_asks_for_no_logging(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    reply = await upload(instance(make_runtime, emulator, s3_bucket), storage, s3_bucket)
    assert reply["documents"][0]["outcome"] == "embedded"
    assert emulator.stats.data_logging
    assert set(emulator.stats.data_logging) == {"false"}


async def test_a_queue_message_asks_for_no_logging(
    make_runtime: RuntimeFactory, s3_bucket: str, emulator: YandexEmulator
) -> None:
    event = load_event("queue_batch")
    event["messages"] = event["messages"][:1]
    event["messages"][0]["details"]["message"]["body"] = json.dumps({"id": "faq-1", "text": TEXT})
    reply = await dispatch(instance(make_runtime, emulator, s3_bucket), event, context())
    assert reply["documents"][0]["outcome"] == "embedded"
    assert set(emulator.stats.data_logging) == {"false"}


async def test_the_http_embeddings_api_asks_for_no_logging(
    make_runtime: RuntimeFactory, s3_bucket: str, emulator: YandexEmulator
) -> None:
    runtime = instance(make_runtime, emulator, s3_bucket)
    status, _ = await call(runtime, request_event("POST", "/v1/embeddings", {"input": ["one", "two"]}))
    assert status == 200
    assert emulator.stats.data_logging == ["false", "false"]


async def test_a_search_query_asks_for_no_logging(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    emulator: YandexEmulator,
    pg_server: PgServer,
    index_table: str,
) -> None:
    runtime = instance(
        make_runtime, emulator, s3_bucket, vector_db_dsn=pg_server.dsn, vector_db_table=index_table
    )
    await upload(runtime, storage, s3_bucket)
    before = len(emulator.stats.data_logging)
    status, found = await call(runtime, request_event("POST", "/v1/search", {"query": "paid leave"}))
    assert status == 200
    assert found["data"]
    assert emulator.stats.data_logging[before:] == ["false"]


async def test_a_reconcile_tick_asks_for_no_logging(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    await storage.put(s3_bucket, "incoming/leave.md", TEXT.encode())
    reply = await dispatch(instance(make_runtime, emulator, s3_bucket), timer_event(None), context())
    assert reply["outcomes"] == {"embedded": 1}
    assert emulator.stats.data_logging
    assert set(emulator.stats.data_logging) == {"false"}


async def test_canaries_and_retries_ask_for_no_logging(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    with YandexEmulator(EmulatorConfig(rps=10**6, fault_rate=0.5, faults=("500",))) as flaky:
        await upload(instance(make_runtime, flaky, s3_bucket), storage, s3_bucket)
        assert flaky.stats.faults > 0  # some requests were retried
        assert set(flaky.stats.data_logging) == {"false"}
    with YandexEmulator(EmulatorConfig(rps=10**6)) as emulator:
        # A setting the model does not answer (it gives 256): the first answer's length is checked
        # with the canary, which is a request like any other.
        wrong = instance(make_runtime, emulator, s3_bucket, embeddings_dimensions=384)
        with pytest.raises(EmbeddingsModelError):
            await upload(wrong, storage, s3_bucket)
        assert emulator.stats.requests >= 2
        assert set(emulator.stats.data_logging) == {"false"}


async def test_the_logs_can_be_allowed(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, emulator: YandexEmulator
) -> None:
    await upload(instance(make_runtime, emulator, s3_bucket, yc_data_logging=True), storage, s3_bucket)
    assert set(emulator.stats.data_logging) == {"true"}


def test_terraform_passes_the_switch_and_keeps_it_off_by_default() -> None:
    module = (ROOT / "terraform" / "variables.tf").read_text() + (
        ROOT / "terraform" / "function.tf"
    ).read_text()
    variable = re.search(r'variable "data_logging" \{.*?default\s*=\s*(\w+)', module, re.S)
    assert variable is not None
    assert variable.group(1) == "false"
    assert re.search(r"YC_DATA_LOGGING\s*=\s*tostring\(var\.data_logging\)", module)
