"""The queues behind the local Message Queue (devstack/ymq_server.py): standard queues in memory.

What the platform's queues do and the pipeline relies on: a received message stays invisible for the
visibility timeout and then comes back; a message received more than the redrive policy's
maxReceiveCount times moves to the dead-letter queue instead of being handed out again; DelaySeconds
holds a new message back. Every operation takes one lock, and a receiver waits on one Condition, woken
by sends, by messages made visible again, and by `close`. Deleting with a receipt handle of an
earlier receive succeeds but deletes nothing (the message was handed out again), as SQS documents.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_MESSAGE_BYTES = 256 * 1024
MAX_WAIT_S = 20
MAX_VISIBILITY_S = 12 * 3600


class QueueFault(Exception):
    """A request the queue refuses: an SQS error code and message, answered with HTTP 400."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Message:
    message_id: str
    body: str
    md5_of_body: str
    sent_ms: int
    visible_at: float
    receive_count: int = 0
    first_receive_ms: int = 0
    receipt_handle: str | None = None


@dataclass
class Queue:
    name: str
    url: str
    arn: str
    visibility_timeout_s: int = 30
    delay_s: int = 0
    dead_letter_arn: str | None = None
    max_receive_count: int = 0
    messages: dict[str, Message] = field(default_factory=dict)  # by message id, in send order


class Queues:
    """Every queue of one account, by URL (its path: the host may be spelled several ways); `clock`
    is monotonic seconds, for visibility and delays."""

    def __init__(
        self, account: str, region: str = "ru-central1", clock: Callable[[], float] = time.monotonic
    ):
        self.account = account
        self.region = region
        self._clock = clock
        self._by_path: dict[str, Queue] = {}
        self._changed = threading.Condition()
        self._closed = False

    def create(self, base_url: str, name: str, attributes: dict[str, str]) -> Queue:
        """The queue `name`, created with these attributes if it does not exist (as CreateQueue)."""
        path = f"{self.account}/{name}"
        with self._changed:
            queue = self._by_path.get(path)
            if queue is None:
                queue = Queue(name, f"{base_url}/{path}", f"yrn:yc:ymq:{self.region}:{self.account}:{name}")
                self._by_path[path] = queue
            _configure(queue, attributes)
            return queue

    def by_url(self, url: str) -> Queue:
        with self._changed:
            queue = self._by_path.get(urlsplit(url).path.strip("/"))
        if queue is None:
            raise QueueFault("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
        return queue

    def by_name(self, name: str) -> Queue:
        with self._changed:
            found = [queue for queue in self._by_path.values() if queue.name == name]
        if not found:
            raise QueueFault("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
        return found[0]

    def send(self, queue: Queue, body: str, delay_s: int | None = None) -> Message:
        delay = queue.delay_s if delay_s is None else delay_s
        if not 0 <= delay <= 900:
            raise QueueFault("InvalidParameterValue", "DelaySeconds must be from 0 to 900.")
        data = body.encode()
        if not data:
            raise QueueFault("MissingParameter", "The request must contain the parameter MessageBody.")
        if len(data) > MAX_MESSAGE_BYTES:
            raise QueueFault("InvalidParameterValue", "The message is longer than 262144 bytes.")
        message = Message(
            message_id=str(uuid.uuid4()),
            body=body,
            md5_of_body=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            sent_ms=int(time.time() * 1000),
            visible_at=self._clock() + delay,
        )
        with self._changed:
            queue.messages[message.message_id] = message
            self._changed.notify_all()
        return message

    def receive(
        self, queue: Queue, *, max_messages: int = 1, wait_s: float = 0, visibility_s: int | None = None
    ) -> list[Message]:
        """Up to `max_messages` visible messages, waiting up to `wait_s` for the first (long polling)."""
        if not 1 <= max_messages <= 10:
            raise QueueFault("InvalidParameterValue", "MaxNumberOfMessages must be from 1 to 10.")
        if not 0 <= wait_s <= MAX_WAIT_S:
            raise QueueFault("InvalidParameterValue", "WaitTimeSeconds must be from 0 to 20.")
        hidden_for = queue.visibility_timeout_s if visibility_s is None else _visibility(visibility_s)
        deadline = self._clock() + wait_s
        with self._changed:
            while True:
                taken = self._take(queue, max_messages, hidden_for)
                now = self._clock()
                if taken or self._closed or now >= deadline:
                    return taken
                upcoming = [m.visible_at for m in queue.messages.values() if m.visible_at > now]
                self._changed.wait(min([deadline, *upcoming]) - now)

    def _take(self, queue: Queue, limit: int, hidden_for: int) -> list[Message]:
        now = self._clock()
        taken: list[Message] = []
        for message in list(queue.messages.values()):
            if len(taken) == limit:
                break
            if message.visible_at > now:
                continue
            dead = self._dead_letter_queue(queue)
            if dead is not None and message.receive_count >= queue.max_receive_count:
                del queue.messages[message.message_id]
                message.visible_at, message.receipt_handle = now, None
                dead.messages[message.message_id] = message
                continue
            message.receive_count += 1
            message.first_receive_ms = message.first_receive_ms or int(time.time() * 1000)
            message.receipt_handle = f"{uuid.uuid4().hex}.{message.message_id}"
            message.visible_at = now + hidden_for
            taken.append(message)
        return taken

    def _dead_letter_queue(self, queue: Queue) -> Queue | None:
        if queue.dead_letter_arn is None:
            return None
        return next((q for q in self._by_path.values() if q.arn == queue.dead_letter_arn), None)

    def delete(self, queue: Queue, receipt_handle: str) -> None:
        with self._changed:
            message = queue.messages.get(_message_id(receipt_handle))
            if message is not None and message.receipt_handle == receipt_handle:
                del queue.messages[message.message_id]

    def change_visibility(self, queue: Queue, receipt_handle: str, timeout_s: int) -> None:
        with self._changed:
            message = queue.messages.get(_message_id(receipt_handle))
            now = self._clock()
            if message is None or message.receipt_handle != receipt_handle or message.visible_at <= now:
                raise QueueFault("MessageNotInflight", "The message is not in flight.")
            message.visible_at = now + _visibility(timeout_s)
            self._changed.notify_all()

    def purge(self, queue: Queue) -> None:
        with self._changed:
            queue.messages.clear()

    def bodies(self, queue: Queue) -> list[str]:
        with self._changed:
            return [message.body for message in queue.messages.values()]

    def counts(self, queue: Queue) -> dict[str, int]:
        """Messages ready to be received, in flight (received, not deleted), and delayed."""
        with self._changed:
            now = self._clock()
            ready = sum(m.visible_at <= now for m in queue.messages.values())
            hidden = [m for m in queue.messages.values() if m.visible_at > now]
        in_flight = sum(m.receive_count > 0 for m in hidden)
        return {"visible": ready, "in_flight": in_flight, "delayed": len(hidden) - in_flight}

    def close(self) -> None:
        """Wake every waiting receiver with nothing: the server is stopping."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()


def _message_id(receipt_handle: str) -> str:
    handle, dot, message_id = receipt_handle.partition(".")
    if not dot or len(handle) != 32:
        raise QueueFault("ReceiptHandleIsInvalid", "The receipt handle is not valid.")
    return message_id


def _visibility(seconds: int) -> int:
    if not 0 <= seconds <= MAX_VISIBILITY_S:
        raise QueueFault("InvalidParameterValue", "VisibilityTimeout must be from 0 to 43200.")
    return seconds


def _configure(queue: Queue, attributes: dict[str, str]) -> None:
    try:
        if "VisibilityTimeout" in attributes:
            queue.visibility_timeout_s = _visibility(int(attributes["VisibilityTimeout"]))
        if "DelaySeconds" in attributes:
            queue.delay_s = int(attributes["DelaySeconds"])
        if attributes.get("RedrivePolicy"):
            policy = json.loads(attributes["RedrivePolicy"])
            queue.dead_letter_arn = str(policy["deadLetterTargetArn"])
            queue.max_receive_count = int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError) as exc:
        raise QueueFault("InvalidAttributeValue", f"Invalid queue attribute: {exc}") from None
    if not 0 <= queue.delay_s <= 900 or (queue.dead_letter_arn and not 1 <= queue.max_receive_count <= 1000):
        raise QueueFault("InvalidAttributeValue", "DelaySeconds or maxReceiveCount is out of range.")
