"""Unit: the Message Queue client's request shape, auth choice and error mapping (respx, no network)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
import pytest
import respx

from embedding_pipeline.clients.message_queue import MessageQueue, QueueError, sqs_auth

ENDPOINT = "https://message-queue.api.cloud.yandex.net"
QUEUE_URL = f"{ENDPOINT}/b1gcloud/dj600000000000me07ol/embed-jobs"
OK = (
    "<SendMessageResponse><SendMessageResult><MD5OfMessageBody>fa46</MD5OfMessageBody>"
    "<MessageId>31bebd6e-5b61e482</MessageId></SendMessageResult></SendMessageResponse>"
)


@respx.mock
async def test_send_message_is_a_signed_form_post() -> None:
    route = respx.post(f"{ENDPOINT}/").mock(return_value=httpx.Response(200, content=OK.encode()))
    async with httpx.AsyncClient() as http:
        queue = MessageQueue(http, ENDPOINT, QUEUE_URL, sqs_auth("YCAJE-id", "secret", None))
        assert await queue.send('{"key": "incoming/ф.md"}', delay_s=5) == "31bebd6e-5b61e482"
    request = route.calls.last.request
    form = dict(parse_qsl(request.content.decode()))
    assert form == {
        "Action": "SendMessage",
        "Version": "2012-11-05",
        "QueueUrl": QUEUE_URL,
        "MessageBody": '{"key": "incoming/ф.md"}',
        "DelaySeconds": "5",
    }
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=YCAJE-id/")
    assert "/ru-central1/sqs/aws4_request" in request.headers["Authorization"]


@respx.mock
async def test_without_keys_the_iam_token_is_used() -> None:
    route = respx.post(f"{ENDPOINT}/").mock(return_value=httpx.Response(200, content=OK.encode()))
    async with httpx.AsyncClient() as http:
        await MessageQueue(http, ENDPOINT, QUEUE_URL, sqs_auth(None, None, "t1.token")).send("{}")
    assert route.calls.last.request.headers["Authorization"] == "Bearer t1.token"


@respx.mock
async def test_error_response_becomes_queue_error() -> None:
    respx.post(f"{ENDPOINT}/").mock(
        return_value=httpx.Response(
            400,
            content=b"<ErrorResponse><Error><Type>Sender</Type>"
            b"<Code>AWS.SimpleQueueService.NonExistentQueue</Code>"
            b"<Message>The specified queue does not exist.</Message></Error>"
            b"<RequestId>42</RequestId></ErrorResponse>",
        )
    )
    async with httpx.AsyncClient() as http:
        with pytest.raises(QueueError, match="NonExistentQueue"):
            await MessageQueue(http, ENDPOINT, QUEUE_URL, sqs_auth("id", "secret", None)).send("{}")


@respx.mock
async def test_connection_failure_becomes_queue_error() -> None:
    respx.post(f"{ENDPOINT}/").mock(side_effect=httpx.ConnectError("refused"))
    async with httpx.AsyncClient() as http:
        with pytest.raises(QueueError, match="ConnectError"):
            await MessageQueue(http, ENDPOINT, QUEUE_URL, sqs_auth("id", "secret", None)).send("{}")


async def test_oversized_message_and_missing_credentials_are_refused() -> None:
    async with httpx.AsyncClient() as http:
        queue = MessageQueue(http, ENDPOINT, QUEUE_URL, sqs_auth("id", "secret", None))
        with pytest.raises(QueueError, match="256 KB"):
            await queue.send("x" * (256 * 1024 + 1))
    with pytest.raises(QueueError, match="no access keys"):
        sqs_auth(None, None, None)
