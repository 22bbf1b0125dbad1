"""The local Message Queue's actions (devstack/ymq_server.py): a form in, the inner XML of the
SQS 2012-11-05 reply out, or QueueFault. One function per action, in the table ACTIONS."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from xml.sax.saxutils import escape

from devstack.ymq_queues import MAX_MESSAGE_BYTES, Message, Queue, QueueFault, Queues

Form = dict[str, str]
_XMLNS = "http://queue.amazonaws.com/doc/2012-11-05/"
_MAX_ENTRIES = 10
# What XML 1.0 cannot carry: SQS refuses a message body holding any of it.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def reply(action: str, result: str, request_id: str) -> str:
    inner = f"<{action}Result>{result}</{action}Result>" if result else ""
    return f'<{action}Response xmlns="{_XMLNS}">{inner}{_metadata(request_id)}</{action}Response>'


def error_reply(fault: QueueFault, request_id: str) -> str:
    error = f"<Type>Sender</Type>{_el('Code', fault.code)}{_el('Message', fault.message)}<Detail/>"
    request = _el("RequestId", request_id)
    return f'<ErrorResponse xmlns="{_XMLNS}"><Error>{error}</Error>{request}</ErrorResponse>'


def perform(state: Queues, form: Form, endpoint: str, request_id: str) -> str:
    """The whole reply to the action the form names; `endpoint` is the base of new queues' URLs."""
    action = form.get("Action", "")
    if action not in ACTIONS:
        raise QueueFault("InvalidAction", f"The action {action!r} is not valid.")
    return reply(action, ACTIONS[action](state, form, endpoint), request_id)


def _el(name: str, value: object) -> str:
    # A carriage return is written as a reference: a parser would read a bare one as a line feed.
    return f"<{name}>{escape(str(value)).replace(chr(13), '&#13;')}</{name}>"


def _metadata(request_id: str) -> str:
    return f"<ResponseMetadata>{_el('RequestId', request_id)}</ResponseMetadata>"


def _required(form: Form, name: str) -> str:
    value = form.get(name)
    if not value:
        raise QueueFault("MissingParameter", f"The request must contain the parameter {name}.")
    return value


def _number(form: Form, name: str, default: int | None = None) -> int | None:
    raw = form.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise QueueFault("InvalidParameterValue", f"{name} must be an integer.") from None


def _queue(state: Queues, form: Form) -> Queue:
    return state.by_url(_required(form, "QueueUrl"))


def _indexed(form: Form, prefix: str) -> list[dict[str, str]]:
    """`Prefix.1.Field=...` parameters as a list of {Field: value}, in index order."""
    found: dict[int, dict[str, str]] = {}
    for name, value in form.items():
        head, _, rest = name.partition(".")
        number, _, field = rest.partition(".")
        if head == prefix and number.isdigit():
            found.setdefault(int(number), {})[field] = value
    return [found[number] for number in sorted(found)]


def _batch(form: Form, prefix: str) -> list[dict[str, str]]:
    entries = _indexed(form, prefix)
    if not entries:
        raise QueueFault("AWS.SimpleQueueService.EmptyBatchRequest", "The batch request has no entries.")
    if len(entries) > _MAX_ENTRIES:
        raise QueueFault(
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "A batch holds at most 10 entries."
        )
    ids = [entry.get("Id", "") for entry in entries]
    if len(set(ids)) != len(ids) or not all(ids):
        raise QueueFault("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Entry ids must be distinct.")
    return entries


def _batch_error(entry_id: str, fault: QueueFault) -> str:
    fields = _el("Id", entry_id) + "<SenderFault>true</SenderFault>"
    fields += _el("Code", fault.code) + _el("Message", fault.message)
    return f"<BatchResultErrorEntry>{fields}</BatchResultErrorEntry>"


def _valid_body(body: str) -> str:
    if _NOT_XML.search(body):
        raise QueueFault("InvalidMessageContents", "The message contains characters outside XML 1.0.")
    return body


def create_queue(state: Queues, form: Form, endpoint: str) -> str:
    attributes = {item.get("Name", ""): item.get("Value", "") for item in _indexed(form, "Attribute")}
    return _el("QueueUrl", state.create(endpoint, _required(form, "QueueName"), attributes).url)


def get_queue_url(state: Queues, form: Form, _endpoint: str) -> str:
    return _el("QueueUrl", state.by_name(_required(form, "QueueName")).url)


def get_queue_attributes(state: Queues, form: Form, _endpoint: str) -> str:
    queue = _queue(state, form)
    counts = state.counts(queue)
    values: dict[str, object] = {
        "ApproximateNumberOfMessages": counts["visible"],
        "ApproximateNumberOfMessagesNotVisible": counts["in_flight"],
        "ApproximateNumberOfMessagesDelayed": counts["delayed"],
        "VisibilityTimeout": queue.visibility_timeout_s,
        "DelaySeconds": queue.delay_s,
        "QueueArn": queue.arn,
    }
    if queue.dead_letter_arn:
        policy = {"deadLetterTargetArn": queue.dead_letter_arn, "maxReceiveCount": queue.max_receive_count}
        values["RedrivePolicy"] = json.dumps(policy)
    asked = {value for name, value in form.items() if name.startswith("AttributeName")} or {"All"}
    chosen = values if "All" in asked else {name: v for name, v in values.items() if name in asked}
    return "".join(f"<Attribute>{_el('Name', n)}{_el('Value', v)}</Attribute>" for n, v in chosen.items())


def _sent(message: Message) -> str:
    return _el("MessageId", message.message_id) + _el("MD5OfMessageBody", message.md5_of_body)


def send_message(state: Queues, form: Form, _endpoint: str) -> str:
    queue = _queue(state, form)
    body = _valid_body(_required(form, "MessageBody"))
    return _sent(state.send(queue, body, _number(form, "DelaySeconds")))


def send_message_batch(state: Queues, form: Form, _endpoint: str) -> str:
    queue = _queue(state, form)
    entries = _batch(form, "SendMessageBatchRequestEntry")
    if sum(len(entry.get("MessageBody", "").encode()) for entry in entries) > MAX_MESSAGE_BYTES:
        raise QueueFault(
            "AWS.SimpleQueueService.BatchRequestTooLong", "The batch is longer than 262144 bytes in all."
        )
    results = []
    for entry in entries:
        try:
            body = _valid_body(_required(entry, "MessageBody"))
            message = state.send(queue, body, _number(entry, "DelaySeconds"))
        except QueueFault as fault:
            results.append(_batch_error(entry["Id"], fault))
        else:
            fields = _el("Id", entry["Id"]) + _sent(message)
            results.append(f"<SendMessageBatchResultEntry>{fields}</SendMessageBatchResultEntry>")
    return "".join(results)


def receive_message(state: Queues, form: Form, _endpoint: str) -> str:
    queue = _queue(state, form)
    messages = state.receive(
        queue,
        max_messages=_number(form, "MaxNumberOfMessages", 1) or 1,
        wait_s=_number(form, "WaitTimeSeconds", 0) or 0,
        visibility_s=_number(form, "VisibilityTimeout"),
    )
    asked = {value for name, value in form.items() if name.startswith("AttributeName")}
    every = "All" in asked
    replies = []
    for message in messages:
        attributes = {
            "SentTimestamp": message.sent_ms,
            "ApproximateReceiveCount": message.receive_count,
            "ApproximateFirstReceiveTimestamp": message.first_receive_ms,
        }
        shown = "".join(
            f"<Attribute>{_el('Name', n)}{_el('Value', v)}</Attribute>"
            for n, v in attributes.items()
            if every or n in asked
        )
        fields = _el("MessageId", message.message_id) + _el("ReceiptHandle", message.receipt_handle)
        fields += _el("MD5OfBody", message.md5_of_body) + _el("Body", message.body)
        replies.append(f"<Message>{fields}{shown}</Message>")
    return "".join(replies)


def delete_message(state: Queues, form: Form, _endpoint: str) -> str:
    state.delete(_queue(state, form), _required(form, "ReceiptHandle"))
    return ""


def delete_message_batch(state: Queues, form: Form, _endpoint: str) -> str:
    queue = _queue(state, form)
    results = []
    for entry in _batch(form, "DeleteMessageBatchRequestEntry"):
        try:
            state.delete(queue, _required(entry, "ReceiptHandle"))
        except QueueFault as fault:
            results.append(_batch_error(entry["Id"], fault))
        else:
            results.append(
                f"<DeleteMessageBatchResultEntry>{_el('Id', entry['Id'])}</DeleteMessageBatchResultEntry>"
            )
    return "".join(results)


def change_message_visibility(state: Queues, form: Form, _endpoint: str) -> str:
    timeout = _number(form, "VisibilityTimeout")
    if timeout is None:
        raise QueueFault("MissingParameter", "The request must contain the parameter VisibilityTimeout.")
    state.change_visibility(_queue(state, form), _required(form, "ReceiptHandle"), timeout)
    return ""


def purge_queue(state: Queues, form: Form, _endpoint: str) -> str:
    state.purge(_queue(state, form))
    return ""


ACTIONS: dict[str, Callable[[Queues, Form, str], str]] = {
    "CreateQueue": create_queue,
    "GetQueueUrl": get_queue_url,
    "GetQueueAttributes": get_queue_attributes,
    "SendMessage": send_message,
    "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message,
    "DeleteMessage": delete_message,
    "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "PurgeQueue": purge_queue,
}
