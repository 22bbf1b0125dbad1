"""Sending to Yandex Message Queue (its SQS-compatible HTTP API) without boto3.

`POST https://message-queue.api.cloud.yandex.net/` with a form body (`Action=SendMessage`,
`Version=2012-11-05`, `QueueUrl`, `MessageBody`), signed with SigV4 for the service `sqs` in
`ru-central1` using static access keys: that is what Yandex documents (message-queue/api-ref). An
IAM token as `Authorization: Bearer` is tried when no keys are set; that form is not documented for
Message Queue, so deployments should set keys (the Terraform module does).
"""

from __future__ import annotations

import httpx

from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.auth import bearer_auth, sigv4_auth
from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.errors import TransientError

MAX_MESSAGE_BYTES = 256 * 1024
MAX_DELAY_S = 900  # DelaySeconds' limit
MAX_BATCH_ENTRIES = 10  # SendMessageBatch's limit, as its total size is MAX_MESSAGE_BYTES


class QueueError(TransientError):
    code = "queue_error"


def sqs_auth(
    access_key_id: str | None,
    secret_access_key: str | None,
    iam_token: str | None,
    region: str = "ru-central1",
) -> httpx.Auth:
    if access_key_id and secret_access_key:
        return sigv4_auth(access_key_id, secret_access_key, region, service="sqs")
    if iam_token:
        return bearer_auth(iam_token)
    raise QueueError("no access keys or IAM token to send to Message Queue")


class MessageQueue:
    def __init__(self, http: httpx.AsyncClient, endpoint: str, queue_url: str, auth: httpx.Auth) -> None:
        self._http = http
        self._endpoint = endpoint.rstrip("/") + "/"
        self._queue_url = queue_url
        self._auth = auth

    async def send(self, body: str, *, delay_s: int = 0) -> str:
        """Send one message; return its MessageId."""
        if len(body.encode()) > MAX_MESSAGE_BYTES:
            raise QueueError("message body is over Message Queue's 256 KB limit")
        form = {
            "Action": "SendMessage",
            "Version": "2012-11-05",
            "QueueUrl": self._queue_url,
            "MessageBody": body,
        }
        if delay_s:
            form["DelaySeconds"] = str(min(delay_s, MAX_DELAY_S))
        reply = await self._post("SendMessage", form)
        return xml_replies.find_text(reply, "MessageId") or ""

    async def send_batch(self, bodies: list[str], *, delay_s: int = 0) -> None:
        """Send up to MAX_BATCH_ENTRIES messages in one request; entries the queue refused are sent
        once more, and QueueError if any still is (the caller's retry sends them all again, and
        every message the pipeline sends may arrive twice anyway)."""
        if not 0 < len(bodies) <= MAX_BATCH_ENTRIES:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH_ENTRIES} messages, not {len(bodies)}")
        if sum(len(body.encode()) for body in bodies) > MAX_MESSAGE_BYTES:
            raise QueueError("a message batch is over Message Queue's 256 KB limit")
        pending = dict(enumerate(bodies))
        for _attempt in range(2):
            form = {"Action": "SendMessageBatch", "Version": "2012-11-05", "QueueUrl": self._queue_url}
            for entry, (number, body) in enumerate(pending.items(), start=1):
                form[f"SendMessageBatchRequestEntry.{entry}.Id"] = f"m{number}"
                form[f"SendMessageBatchRequestEntry.{entry}.MessageBody"] = body
                if delay_s:
                    form[f"SendMessageBatchRequestEntry.{entry}.DelaySeconds"] = str(
                        min(delay_s, MAX_DELAY_S)
                    )
            reply = await self._post("SendMessageBatch", form)
            try:
                refused = xml_replies.batch_failures(reply)
            except ValueError:
                raise QueueError("SendMessageBatch answered with what is not XML") from None
            pending = {number: body for number, body in pending.items() if f"m{number}" in refused}
            if not pending:
                return
        reasons = "; ".join(sorted(set(refused.values())))[:300]
        raise QueueError(f"SendMessageBatch refused {len(pending)} of {len(bodies)} messages: {reasons}")

    async def _post(self, action: str, form: dict[str, str]) -> bytes:
        try:
            response = await self._http.post(self._endpoint, data=form, auth=self._auth, timeout=10.0)
        except HTTPX_ERRORS as exc:
            raise QueueError(f"{action} failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            code, message = xml_replies.error(response.content)
            raise QueueError(f"{action} answered {response.status_code} {code}: {message}")
        return response.content
