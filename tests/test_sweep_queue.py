"""Functional: a sweep fanned out over Message Queue, with the test playing the queue's trigger.

The queue is a recording fake (its delivery semantics are devstack's real queue's, tested apart in
test_devstack_queue.py); SeaweedFS is real. Delivering messages by hand lets a test deliver one
twice, late, or out of turn, and crash a step between its commit and its send.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from devstack.events import queue_event, timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.reconcile.state import Holder, Lease, prefix_id_of
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.support import RuntimeFactory, context, read_json

QUEUE_URL = "https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs"
DOCUMENTS = 25


@pytest.fixture
def queue() -> FakeMessageQueue:
    return FakeMessageQueue()


@pytest.fixture
async def fanned(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
    queue: FakeMessageQueue,
) -> Runtime:
    """A function instance with a queue, over a bucket of DOCUMENTS unembedded sources."""
    for number in range(DOCUMENTS):
        await storage.put(
            s3_bucket, f"incoming/doc-{number:02d}.md", f"# Doc {number}\n\nText {number}.".encode()
        )
    return make_runtime(
        transports=Transports(embeddings=api.transport, queue=queue.transport),
        source_bucket=s3_bucket,
        queue_url=QUEUE_URL,
        reconcile_page_size=10,
    )


def kinds(bodies: list[str]) -> tuple[list[str], list[str]]:
    """The references and the sweep steps among message bodies."""
    parsed = [json.loads(body) for body in bodies]
    return (
        [body for body, message in zip(bodies, parsed, strict=True) if "key" in message],
        [body for body, message in zip(bodies, parsed, strict=True) if "reconcile" in message],
    )


async def deliver(runtime: Runtime, bodies: list[str]) -> list[dict[str, Any]]:
    """As the trigger does: batches of up to ten messages, each batch one invocation."""
    replies = []
    for start in range(0, len(bodies), 10):
        batch = bodies[start : start + 10]
        ids = [f"m-{time.monotonic_ns()}-{n}" for n in range(len(batch))]
        replies.append(await dispatch(runtime, queue_event(*batch, message_ids=ids), context()))
    return replies


async def test_a_sweep_queues_its_documents_and_reports_what_the_instances_did(
    fanned: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI, queue: FakeMessageQueue
) -> None:
    # WHEN the timer fires
    tick = await dispatch(fanned, timer_event(None), context())

    # THEN it walks every page and queues each document once, ten a request, tagged with the sweep
    assert tick["stopped_by"] == "handed on to the queue"
    assert tick["queued"] == DOCUMENTS
    assert tick["found"]["missing"] == DOCUMENTS
    # Pages of about ten sources, their ends chosen by the keys (inventory.ends_page), and the
    # inline texts' page.
    assert 3 <= tick["pages"] <= 6
    assert api.requests == 0  # the walk embeds nothing itself
    refs, steps = kinds(queue.take())
    assert sorted(json.loads(body)["key"] for body in refs) == [
        f"incoming/doc-{number:02d}.md" for number in range(DOCUMENTS)
    ]
    assert {json.loads(body)["sweep"] for body in refs} == {
        f"{prefix_id_of(s3_bucket, 'incoming/')}/{tick['sweep']}"
    }
    batches = [request for request in queue.requests if b"SendMessageBatch" in request.content]
    assert 3 <= len(batches) <= tick["pages"] + 1  # ten references a request, within each page
    assert len(steps) == 1  # the sweep waits, a step at a time, for the instances to report

    # WHEN the trigger delivers the references, and then the step
    await deliver(fanned, refs)
    assert api.requests == DOCUMENTS
    reply = (await deliver(fanned, steps))[0]

    # THEN the sweep ends with one report of what its instances did and paid
    assert reply["documents"][0]["outcome"] == "reconciled"
    [report_key] = [info.key async for info in storage.list_objects(s3_bucket, "embeddings/_reports/")]
    report = await read_json(storage, s3_bucket, report_key)
    assert report["mode"] == "queue"
    assert report["queued"] == report["accounted"] == DOCUMENTS
    assert report["outcomes"] == {"embedded": DOCUMENTS}
    assert report["tokens"] == sum(max(1, len(text) // 4) for text in api.texts)
    assert report["api_requests"] == DOCUMENTS
    assert report["unaccounted"] == 0
    # and nothing of the sweep is left but its report, the order probes and what its pages verified
    left = [info.key async for info in storage.list_objects(s3_bucket, "embeddings/_sweeps/")]
    assert all(key.startswith("embeddings/_sweeps/order/") or "/verified/" in key for key in left), left


async def test_repeated_deliveries_of_references_and_steps_pay_nothing_twice(
    fanned: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI, queue: FakeMessageQueue
) -> None:
    await dispatch(fanned, timer_event(None), context())
    refs, steps = kinds(queue.take())

    await deliver(fanned, refs)
    await deliver(fanned, refs)  # every reference delivered twice
    assert api.requests == DOCUMENTS
    assert max(api.texts.values()) == 1

    await deliver(fanned, steps)
    again = await deliver(fanned, steps)  # the step too: the sweep it belonged to is over
    assert again[0]["documents"][0]["reason"] == "obsolete step"
    [report_key] = [info.key async for info in storage.list_objects(s3_bucket, "embeddings/_reports/")]
    report = await read_json(storage, s3_bucket, report_key)
    assert report["outcomes"] == {"embedded": DOCUMENTS, "unchanged": DOCUMENTS}
    assert report["tokens"] == sum(max(1, len(text) // 4) for text in api.texts)  # paid once


async def test_a_tick_while_a_sweep_drains_leaves_it_alone(
    fanned: Runtime, api: FakeEmbeddingsAPI, queue: FakeMessageQueue
) -> None:
    first = await dispatch(fanned, timer_event(None), context())
    queue.take()

    second = await dispatch(fanned, timer_event(None), context())

    assert second["stopped_by"] == "a sweep is in progress"
    assert second["in_progress"]["sweep"] == first["sweep"]
    assert queue.take() == []  # nothing queued twice
    assert api.requests == 0


async def test_a_step_whose_hand_over_crashed_before_its_send_is_sent_again(
    fanned: Runtime, storage: ObjectStorage, s3_bucket: str, queue: FakeMessageQueue
) -> None:
    """The step committed `step + 1` and died before sending it: its own message comes back (the
    invocation failed), finds the next step unclaimed, and sends it again."""
    tick = await dispatch(fanned, timer_event(None), context())
    refs, steps = kinds(queue.take())
    await deliver(fanned, refs)
    step = json.loads(steps[0])["reconcile"]
    earlier = json.dumps({"reconcile": {**step, "step": step["step"] - 1}})

    reply = (await deliver(fanned, [earlier]))[0]

    assert reply["documents"][0]["reason"] == "the next step sent again"
    _, resent = kinds(queue.take())
    assert resent == [json.dumps({"reconcile": step}, separators=(",", ":"))]
    await deliver(fanned, resent)
    reports = [info.key async for info in storage.list_objects(s3_bucket, "embeddings/_reports/")]
    assert len(reports) == 1
    assert tick["sweep"] in (await read_json(storage, s3_bucket, reports[0]))["sweep"]


async def test_a_step_held_by_a_live_run_tries_again_once_the_hold_can_have_ended(
    fanned: Runtime, storage: ObjectStorage, s3_bucket: str, queue: FakeMessageQueue
) -> None:
    await dispatch(fanned, timer_event(None), context())
    _, steps = kinds(queue.take())
    layout = OutputLayout(s3_bucket, "embeddings/")
    lease = Lease(storage, layout, prefix_id_of(s3_bucket, "incoming/"), by="test")
    state = await lease.read()
    assert state is not None
    state.holder = Holder(by="another instance", until=time.time() + 30)
    assert await lease.write(state)

    reply = (await deliver(fanned, steps))[0]

    assert reply["documents"][0]["reason"].startswith("held by another instance")
    retried = queue.sent[-1]
    assert retried["MessageBody"] == steps[0]
    assert 25 <= int(retried["DelaySeconds"]) <= 32


async def test_a_sweep_whose_holder_is_gone_is_taken_over_by_the_next_tick(
    fanned: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI, queue: FakeMessageQueue
) -> None:
    first = await dispatch(fanned, timer_event(None), context())
    refs, _steps = kinds(queue.take())
    layout = OutputLayout(s3_bucket, "embeddings/")
    lease = Lease(storage, layout, prefix_id_of(s3_bucket, "incoming/"), by="test")
    state = await lease.read()
    assert state is not None
    state.holder, state.expect_by = Holder(by="crashed", until=time.time() - 1), None
    assert await lease.write(state)
    await deliver(fanned, refs)

    taken = await dispatch(fanned, timer_event(None), context())

    assert taken["sweep"] == first["sweep"]
    assert taken["stopped_by"] in (None, "handed on to the queue")
    assert api.requests == DOCUMENTS  # what was queued before is not queued again: it is current now
