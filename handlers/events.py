"""Pydantic models of the trigger events, parsed once here at the edge.

Shapes follow Yandex Cloud's documentation (see ../shared/reference/yandex-cloud.md). Unknown fields
are ignored: the platform adds fields over time (`tracing_context`, `cloud_id`...).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

STORAGE_EVENT_PREFIX = "yandex.cloud.events.storage."
QUEUE_EVENT_TYPE = "yandex.cloud.events.messagequeue.QueueMessage"
TIMER_EVENT_TYPE = "yandex.cloud.events.serverless.triggers.TimerMessage"


class _Lenient(BaseModel):
    # defer_build: a schema is built when its first event arrives, not at every cold start.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class EventMetadata(_Lenient):
    event_id: str = ""
    event_type: str
    created_at: str | None = None


class StorageDetails(_Lenient):
    bucket_id: str
    object_id: str


class StorageMessage(_Lenient):
    event_metadata: EventMetadata
    details: StorageDetails

    @property
    def action(self) -> str:
        """`ObjectCreate`, `ObjectDelete` or `ObjectUpdate` (an ACL change, not new content)."""
        return self.event_metadata.event_type.removeprefix(STORAGE_EVENT_PREFIX)


def event_type_of(event: Any) -> str | None:
    """The first message's `event_type` for trigger envelopes, else None."""
    if not isinstance(event, dict):
        return None
    messages = event.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
        return None
    metadata = messages[0].get("event_metadata")
    if not isinstance(metadata, dict):
        return None
    event_type = metadata.get("event_type")
    return event_type if isinstance(event_type, str) else None


class QueueMessageBody(_Lenient):
    message_id: str = ""
    body: str


class QueueDetails(_Lenient):
    queue_id: str = ""
    message: QueueMessageBody


class QueueMessage(_Lenient):
    event_metadata: EventMetadata
    details: QueueDetails


class TimerDetails(_Lenient):
    trigger_id: str = ""
    payload: str | None = None


class TimerMessage(_Lenient):
    event_metadata: EventMetadata
    details: TimerDetails


class HttpEvent(_Lenient):
    """Direct calls, API Gateway payload 0.1 (`url`, `path` template) and 1.0 (`version`, `path` actual)."""

    httpMethod: str
    headers: dict[str, str] = {}
    queryStringParameters: dict[str, str] | None = None
    body: str | None = None
    isBase64Encoded: bool = False
    url: str | None = None
    path: str | None = None
    version: str | None = None
    requestContext: dict[str, Any] = {}

    @property
    def route_path(self) -> str:
        """The request's path, whichever shape carried it (see README: "How paths reach the function")."""
        if self.version == "1.0" and self.path:
            return self.path
        if self.url:
            return self.url.split("?", 1)[0]
        query = self.queryStringParameters or {}
        if query.get("path"):
            return query["path"]
        return ""
