"""Functional: the devstack's Message Queue (devstack/ymq_server.py) and its trigger
(devstack/queue_trigger.py), over real HTTP on loopback. Messages are sent with the product's own
client (embedding_pipeline/clients/message_queue.py); everything else is the SQS form API, signed as
the product signs. Visibility timeouts are 1 s (or 0, per receive), so the file runs in seconds.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from bench.fleet import Fleet
from devstack.instances import FunctionInstances
from devstack.queue_trigger import QueueTrigger, Submit, TriggerError, received_messages
from devstack.ymq_server import QueueServer, start_queue_server
from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.message_queue import MessageQueue, QueueError, sqs_auth
from handlers.events import QUEUE_EVENT_TYPE, QueueMessage

KEY, SECRET = "queue-test-key", "queue-test-secret-value"


@pytest.fixture
def server() -> Iterator[QueueServer]:
    queues = start_queue_server(access_key=KEY, secret_key=SECRET)
    yield queues
    queues.stop()


def call(server: QueueServer, form: dict[str, str], *, secret: str = SECRET) -> httpx.Response:
    """One signed SQS request, as the trigger sends them."""
    auth = sqs_auth(KEY, secret, None)
    return httpx.post(server.endpoint + "/", data={"Version": "2012-11-05", **form}, auth=auth, timeout=30)


def receive(server: QueueServer, url: str, **params: str) -> list[dict[str, str]]:
    """ReceiveMessage: each message's MessageId, ReceiptHandle, Body, MD5OfBody and asked attributes."""
    form = {"Action": "ReceiveMessage", "QueueUrl": url, "MaxNumberOfMessages": "10", **params}
    response = call(server, form)
    assert response.status_code == 200, response.text
    return received_messages(response.content)


async def send(server: QueueServer, url: str, *bodies: str, delay_s: int = 0, secret: str = SECRET) -> None:
    async with httpx.AsyncClient() as http:
        queue = MessageQueue(http, server.endpoint, url, sqs_auth(KEY, secret, None))
        if len(bodies) == 1:
            await queue.send(bodies[0], delay_s=delay_s)
        else:
            await queue.send_batch(list(bodies), delay_s=delay_s)


def submits(instances: FunctionInstances, fleet: Fleet) -> list[Submit]:
    """Not a test: mypy checks that both of the devstack's function pools fit the trigger."""
    return [instances.submit, fleet.submit]


async def test_sent_messages_are_received_with_their_md5_and_deleted(server: QueueServer) -> None:
    url = server.create_queue("jobs")
    await send(server, url, '{"key": "incoming/ф.md"}')
    await send(server, url, "second", "third\r\nwith a carriage return")
    assert server.counts(url) == {"visible": 3, "in_flight": 0, "delayed": 0}

    got = receive(server, url, AttributeName="All")

    assert [m["Body"] for m in got] == [
        '{"key": "incoming/ф.md"}',
        "second",
        "third\r\nwith a carriage return",
    ]
    for message in got:
        assert (
            message["MD5OfBody"] == hashlib.md5(message["Body"].encode(), usedforsecurity=False).hexdigest()
        )
        assert message["ApproximateReceiveCount"] == "1"
        assert abs(int(message["SentTimestamp"]) / 1000 - time.time()) < 10
    assert server.counts(url) == {"visible": 0, "in_flight": 3, "delayed": 0}
    form = {"Action": "DeleteMessageBatch", "QueueUrl": url}
    for number, message in enumerate(got[1:], start=1):
        form[f"DeleteMessageBatchRequestEntry.{number}.Id"] = f"e{number}"
        form[f"DeleteMessageBatchRequestEntry.{number}.ReceiptHandle"] = message["ReceiptHandle"]
    assert xml_replies.batch_failures(call(server, form).content) == {}
    deleted = call(
        server, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": got[0]["ReceiptHandle"]}
    )
    assert deleted.status_code == 200
    assert server.bodies(url) == []


def test_queue_url_and_attributes_are_answered(server: QueueServer) -> None:
    dead = server.create_queue("jobs-dlq")
    url = server.create_queue("jobs", visibility_timeout_s=7, dead_letter_queue=dead, max_receive_count=4)

    found = call(server, {"Action": "GetQueueUrl", "QueueName": "jobs"})
    attributes = call(server, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "All"})
    missing = call(server, {"Action": "GetQueueUrl", "QueueName": "nope"})

    assert url == f"{server.endpoint}/local/jobs"
    assert xml_replies.find_text(found.content, "QueueUrl") == url
    text = attributes.text
    assert "<Name>QueueArn</Name><Value>yrn:yc:ymq:ru-central1:local:jobs</Value>" in text
    assert "<Name>VisibilityTimeout</Name><Value>7</Value>" in text
    assert "yrn:yc:ymq:ru-central1:local:jobs-dlq" in text
    assert "&quot;maxReceiveCount&quot;: 4" in text or '"maxReceiveCount": 4' in text
    assert missing.status_code == 400
    assert xml_replies.error(missing.content)[0] == "AWS.SimpleQueueService.NonExistentQueue"


def test_an_unfinished_message_comes_back_after_the_visibility_timeout(server: QueueServer) -> None:
    url = server.create_queue("jobs", visibility_timeout_s=1)
    assert call(server, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "m"}).status_code == 200

    first = receive(server, url, AttributeName="ApproximateReceiveCount")
    hidden = receive(server, url)
    time.sleep(1.1)
    again = receive(server, url, AttributeName="ApproximateReceiveCount")

    assert [m["Body"] for m in first] == ["m"]
    assert hidden == []
    assert [(m["MessageId"], m["ApproximateReceiveCount"]) for m in again] == [(first[0]["MessageId"], "2")]
    assert again[0]["ReceiptHandle"] != first[0]["ReceiptHandle"]
    # The first receive's handle is stale: deleting with it succeeds and deletes nothing, as in SQS.
    call(server, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": first[0]["ReceiptHandle"]})
    assert server.bodies(url) == ["m"]


def test_change_visibility_and_purge(server: QueueServer) -> None:
    url = server.create_queue("jobs", visibility_timeout_s=30)
    for body in ("a", "b"):
        call(server, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": body})
    got = receive(server, url, MaxNumberOfMessages="1")

    form = {"Action": "ChangeMessageVisibility", "QueueUrl": url, "ReceiptHandle": got[0]["ReceiptHandle"]}
    assert call(server, {**form, "VisibilityTimeout": "0"}).status_code == 200
    assert sorted(m["Body"] for m in receive(server, url)) == ["a", "b"]
    assert call(server, {"Action": "PurgeQueue", "QueueUrl": url}).status_code == 200
    assert server.counts(url) == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_message_received_more_than_max_receive_count_times_moves_to_the_dead_letter_queue(
    server: QueueServer,
) -> None:
    dead = server.create_queue("jobs-dlq")
    url = server.create_queue("jobs", dead_letter_queue=dead, max_receive_count=2)
    call(server, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "poison"})

    deliveries = [receive(server, url, VisibilityTimeout="0") for _ in range(3)]

    assert [len(batch) for batch in deliveries] == [1, 1, 0]
    assert server.bodies(url) == []
    assert server.bodies(dead) == ["poison"]
    assert [m["Body"] for m in receive(server, dead)] == ["poison"]


async def test_delay_seconds_holds_a_message_back(server: QueueServer) -> None:
    url = server.create_queue("jobs")
    await send(server, url, "later", delay_s=1)
    form = {"Action": "SendMessageBatch", "QueueUrl": url}
    for number, (body, delay) in enumerate([("now", "0"), ("in a second", "1")], start=1):
        form[f"SendMessageBatchRequestEntry.{number}.Id"] = f"e{number}"
        form[f"SendMessageBatchRequestEntry.{number}.MessageBody"] = body
        form[f"SendMessageBatchRequestEntry.{number}.DelaySeconds"] = delay
    assert xml_replies.batch_failures(call(server, form).content) == {}

    at_once = receive(server, url)
    counts = server.counts(url)
    started = time.monotonic()
    waited = receive(server, url, WaitTimeSeconds="5")  # a long poll wakes when they become visible
    waited += receive(server, url, WaitTimeSeconds="1")

    assert [m["Body"] for m in at_once] == ["now"]
    assert counts == {"visible": 0, "in_flight": 1, "delayed": 2}
    assert sorted(m["Body"] for m in waited) == ["in a second", "later"]
    assert time.monotonic() - started < 3


def test_a_long_poll_returns_as_soon_as_a_message_arrives(server: QueueServer) -> None:
    url = server.create_queue("jobs")
    sender = threading.Timer(
        0.3, call, (server, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "hi"})
    )
    started = time.monotonic()
    sender.start()

    got = receive(server, url, WaitTimeSeconds="10")

    assert [m["Body"] for m in got] == ["hi"]
    assert 0.25 < time.monotonic() - started < 3
    sender.join()


def test_batches_over_the_limits_are_refused(server: QueueServer) -> None:
    url = server.create_queue("jobs")
    too_many = {"Action": "SendMessageBatch", "QueueUrl": url}
    for number in range(1, 12):
        too_many[f"SendMessageBatchRequestEntry.{number}.Id"] = f"e{number}"
        too_many[f"SendMessageBatchRequestEntry.{number}.MessageBody"] = "x"
    too_long = {"Action": "SendMessageBatch", "QueueUrl": url}
    for number in (1, 2):
        too_long[f"SendMessageBatchRequestEntry.{number}.Id"] = f"e{number}"
        too_long[f"SendMessageBatchRequestEntry.{number}.MessageBody"] = "x" * 150_000

    refused = [call(server, too_many), call(server, too_long)]

    assert [r.status_code for r in refused] == [400, 400]
    assert [xml_replies.error(r.content)[0] for r in refused] == [
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        "AWS.SimpleQueueService.BatchRequestTooLong",
    ]
    assert server.bodies(url) == []


async def test_a_wrong_secret_or_key_is_refused_with_403(server: QueueServer) -> None:
    url = server.create_queue("jobs")

    with pytest.raises(QueueError, match="403 SignatureDoesNotMatch"):
        await send(server, url, "forged", secret="not-the-secret")
    unsigned = httpx.post(
        server.endpoint + "/", data={"Action": "SendMessage", "QueueUrl": url, "MessageBody": "x"}
    )
    async with httpx.AsyncClient() as http:
        stranger = MessageQueue(http, server.endpoint, url, sqs_auth("someone-else", SECRET, None))
        with pytest.raises(QueueError, match="403 InvalidClientTokenId"):
            await stranger.send("x")

    assert unsigned.status_code == 403
    assert xml_replies.error(unsigned.content)[0] == "MissingAuthenticationToken"
    assert server.bodies(url) == []


class Function:
    """A submit function that records each event and fails the invocations it is told to."""

    def __init__(self, failures: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self.failures = failures
        self.lock = threading.Lock()

    def submit(self, event: dict[str, Any], _context: Any) -> Future[dict[str, Any]]:
        reply: Future[dict[str, Any]] = Future()
        with self.lock:
            self.events.append(event)
            failing = len(self.events) <= self.failures
        if failing:
            reply.set_exception(RuntimeError("the invocation raised"))
        else:
            reply.set_result({"documents": [], "parked": 0})
        return reply


def wait_until(condition: Any, timeout_s: float = 5.0) -> None:
    stop = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < stop, "timed out"
        time.sleep(0.05)


def bodies_of(event: dict[str, Any]) -> list[str]:
    return [QueueMessage.model_validate(m).details.message.body for m in event["messages"]]


async def test_the_trigger_delivers_a_batch_and_deletes_it_on_success(server: QueueServer) -> None:
    url = server.create_queue("jobs", visibility_timeout_s=1)
    function = Function()
    trigger = QueueTrigger(server.endpoint, url, function.submit, access_key=KEY, secret_key=SECRET, wait_s=1)
    await send(server, url, "one", "two", "three")
    trigger.start()
    try:
        wait_until(lambda: trigger.stats()["deleted"] == 3)
    finally:
        trigger.stop()

    assert [bodies_of(event) for event in function.events] == [["one", "two", "three"]]
    message = function.events[0]["messages"][0]
    assert message["event_metadata"]["event_type"] == QUEUE_EVENT_TYPE
    assert message["event_metadata"]["event_id"] == message["details"]["message"]["message_id"]
    assert message["details"]["queue_id"] == "yrn:yc:ymq:ru-central1:local:jobs"
    assert (
        message["details"]["message"]["md5_of_body"] == hashlib.md5(b"one", usedforsecurity=False).hexdigest()
    )
    assert int(message["details"]["message"]["attributes"]["SentTimestamp"]) > 0
    assert server.bodies(url) == []
    assert trigger.stats() == {
        "batches": 1,
        "messages": 3,
        "succeeded": 1,
        "failed": 0,
        "deleted": 3,
        "redeliveries": 0,
        "receive_errors": 0,
    }


async def test_the_trigger_leaves_a_failed_batch_to_come_back(server: QueueServer) -> None:
    url = server.create_queue("jobs", visibility_timeout_s=1)
    function = Function(failures=1)
    trigger = QueueTrigger(server.endpoint, url, function.submit, access_key=KEY, secret_key=SECRET, wait_s=1)
    await send(server, url, "a", "b")
    trigger.start()
    try:
        wait_until(lambda: trigger.stats()["failed"] == 1)
        kept = server.counts(url)
        wait_until(lambda: trigger.stats()["deleted"] == 2)
    finally:
        trigger.stop()

    assert kept == {"visible": 0, "in_flight": 2, "delayed": 0}  # nothing deleted after the failure
    assert [bodies_of(event) for event in function.events] == [["a", "b"], ["a", "b"]]
    stats = trigger.stats()
    assert (stats["batches"], stats["failed"], stats["succeeded"], stats["redeliveries"]) == (2, 1, 1, 2)
    assert server.bodies(url) == []


def test_the_trigger_refuses_to_start_with_a_wrong_secret(server: QueueServer) -> None:
    url = server.create_queue("jobs")
    function = Function()
    trigger = QueueTrigger(server.endpoint, url, function.submit, access_key=KEY, secret_key="wrong")

    with pytest.raises(TriggerError, match="403 SignatureDoesNotMatch"):
        trigger.start()
    trigger.stop()
    assert function.events == []
