"""The Message Queue trigger, played locally: batches from a queue to the function, as the platform does.

`concurrency` pollers each long-poll ReceiveMessage (up to `batch_size` messages, SigV4-signed with
the product's signer), build the trigger's event from the batch (devstack/events.py's envelope, one
message per queue message, the details as Yandex writes them), hand it to `submit`, and wait for
the invocation. A success deletes the whole batch (DeleteMessageBatch); an exception, an error
reply or a cancelled invocation deletes nothing, so the batch comes back after the queue's
visibility timeout (all or nothing: the platform has no partial-batch reply), and the queue's
redrive policy moves a message received too often to its dead-letter queue. So at most `concurrency`
batches are in flight. `submit` is `FunctionInstances.submit` or `bench.fleet.Fleet.submit`.
"""

from __future__ import annotations

import hashlib
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import Any

import httpx

from devstack.context import LocalContext
from devstack.events import envelope
from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.auth import sigv4_auth
from handlers.events import QUEUE_EVENT_TYPE

Submit = Callable[[dict[str, Any], Any], Future[dict[str, Any]]]
_EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
_RETRY_S = 1.0  # after a failed ReceiveMessage (the queue is restarting, say)


class TriggerError(Exception):
    """The queue answered a request of the trigger's with an error."""


@dataclass
class _Stats:
    lock: threading.Lock = field(default_factory=threading.Lock)
    figures: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("batches", "messages", "succeeded", "failed", "deleted", "redeliveries", "receive_errors"), 0
        )
    )

    def add(self, **amounts: int) -> None:
        with self.lock:
            for name, amount in amounts.items():
                self.figures[name] += amount


class QueueTrigger:
    def __init__(
        self,
        endpoint: str,
        queue_url: str,
        submit: Submit,
        *,
        access_key: str,
        secret_key: str,
        concurrency: int = 1,
        batch_size: int = 10,
        wait_s: int = 2,
        region: str = "ru-central1",
        context: Callable[[], Any] = LocalContext,
    ) -> None:
        """`wait_s` is each ReceiveMessage's long poll, 0 to 20 s, and the longest `stop` waits for one."""
        if not 1 <= batch_size <= 10:
            raise ValueError("ReceiveMessage returns 1 to 10 messages at a time")
        self._endpoint = endpoint.rstrip("/") + "/"
        self._queue_url = queue_url
        self._submit = submit
        self._batch_size = batch_size
        self._wait_s = wait_s
        self._context = context
        self._http = httpx.Client(
            auth=sigv4_auth(access_key, secret_key, region, service="sqs"), timeout=wait_s + 10.0
        )
        self._stopping = threading.Event()
        self._stats = _Stats()
        self._queue_arn = ""
        self._threads = [
            threading.Thread(target=self._poll, name=f"queue-trigger-{number}", daemon=True)
            for number in range(concurrency)
        ]

    def start(self) -> None:
        """Start polling; raises TriggerError if the queue cannot be reached or does not exist."""
        attributes = self._call({"Action": "GetQueueAttributes", "AttributeName.1": "QueueArn"})
        self._queue_arn = xml_replies.find_text(attributes, "Value") or ""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop polling; a batch still being invoked is left to come back after the visibility timeout."""
        self._stopping.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=self._wait_s + 11.0)
        self._http.close()

    def stats(self) -> dict[str, int]:
        """Batches delivered, messages in them, batches that succeeded and failed, messages deleted,
        deliveries of messages received before (redeliveries), and ReceiveMessage calls that failed."""
        with self._stats.lock:
            return dict(self._stats.figures)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                received = self._receive()
            except (httpx.HTTPError, TriggerError):
                self._stats.add(receive_errors=1)
                self._stopping.wait(_RETRY_S)
                continue
            if received and not self._stopping.is_set():
                self._deliver(received)

    def _receive(self) -> list[dict[str, str]]:
        reply = self._call(
            {
                "Action": "ReceiveMessage",
                "MaxNumberOfMessages": str(self._batch_size),
                "WaitTimeSeconds": str(self._wait_s),
                "AttributeName.1": "SentTimestamp",
                "AttributeName.2": "ApproximateReceiveCount",
            }
        )
        return received_messages(reply)

    def _deliver(self, received: list[dict[str, str]]) -> None:
        event = self.event(received)
        redelivered = sum(int(m.get("ApproximateReceiveCount") or 1) > 1 for m in received)
        self._stats.add(batches=1, messages=len(received), redeliveries=redelivered)
        invocation = self._submit(event, self._context())
        while not wait_for([invocation], timeout=0.5).done:
            if self._stopping.is_set():
                return  # not deleted: the batch comes back, as after a crash
        if invocation.cancelled() or invocation.exception() is not None or _is_error(invocation.result()):
            self._stats.add(failed=1)
            return
        self._stats.add(succeeded=1)
        form = {"Action": "DeleteMessageBatch"}
        for number, message in enumerate(received, start=1):
            form[f"DeleteMessageBatchRequestEntry.{number}.Id"] = f"m{number}"
            form[f"DeleteMessageBatchRequestEntry.{number}.ReceiptHandle"] = message["ReceiptHandle"]
        try:
            refused = xml_replies.batch_failures(self._call(form))
        except (httpx.HTTPError, TriggerError, ValueError):
            return  # the messages come back and are delivered again: the function takes that
        self._stats.add(deleted=len(received) - len(refused))

    def event(self, received: list[dict[str, str]]) -> dict[str, Any]:
        """The Message Queue trigger's event for these received messages, as Yandex builds it."""
        details = [
            {
                "queue_id": self._queue_arn,
                "message": {
                    "message_id": message["MessageId"],
                    "md5_of_body": message["MD5OfBody"],
                    "body": message["Body"],
                    "attributes": {"SentTimestamp": message.get("SentTimestamp", "")},
                    "message_attributes": {},
                    "md5_of_message_attributes": _EMPTY_MD5,
                },
            }
            for message in received
        ]
        event = envelope(QUEUE_EVENT_TYPE, details)
        for entry in event["messages"]:  # the platform uses the message id as the event id
            entry["event_metadata"]["event_id"] = entry["details"]["message"]["message_id"]
        return event

    def _call(self, form: dict[str, str]) -> bytes:
        form = {**form, "Version": "2012-11-05", "QueueUrl": self._queue_url}
        response = self._http.post(self._endpoint, data=form)
        if response.status_code != 200:
            code, message = xml_replies.error(response.content)
            raise TriggerError(f"{form['Action']} answered {response.status_code} {code}: {message}")
        return response.content


def received_messages(reply: bytes) -> list[dict[str, str]]:
    """ReceiveMessage's messages: their fields, with each Attribute as Name: Value."""
    try:
        root = ET.fromstring(reply)  # noqa: S314 - the reply of the queue we were configured with
    except ET.ParseError:
        raise TriggerError("ReceiveMessage answered with what is not XML") from None
    found = []
    for element in root.iter():
        if _local(element) != "Message":
            continue
        fields = {_local(child): child.text or "" for child in element if _local(child) != "Attribute"}
        for attribute in element:
            if _local(attribute) == "Attribute":
                pair = {_local(part): part.text or "" for part in attribute}
                fields[pair.get("Name", "")] = pair.get("Value", "")
        found.append(fields)
    return found


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _is_error(result: object) -> bool:
    """The runtime's reply for an invocation that failed: {"errorType", "errorMessage"}."""
    return isinstance(result, dict) and "errorType" in result and "errorMessage" in result
