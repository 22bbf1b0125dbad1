"""Trigger events as Yandex Cloud delivers them, built for local callers: one builder per kind.

The local stack, `embedpipe generate-event`, the benchmarks and the tests build events here and only
here. The shapes follow the platform's documentation; `tests/events/*.json` holds real samples of
each kind, and a test keeps these builders in step with them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from devstack.local_env import LOCAL_QUEUE
from handlers.events import QUEUE_EVENT_TYPE, STORAGE_EVENT_PREFIX, TIMER_EVENT_TYPE

StorageAction = Literal["ObjectCreate", "ObjectDelete", "ObjectUpdate"]
HttpShape = Literal["direct", "0.1", "1.0"]  # a direct call, API Gateway payload 0.1 or 1.0
_STRIPPED = {"authorization", "cookie"}  # the platform removes them from direct calls
_EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


def envelope(event_type: str, details: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The trigger wrapper: one message per entry of `details`."""
    return {
        "messages": [
            {
                "event_metadata": {
                    "event_id": str(uuid.uuid4()),
                    "event_type": event_type,
                    "created_at": _now(),
                    "cloud_id": "local",
                    "folder_id": "local",
                },
                "details": item,
            }
            for item in details
        ]
    }


def storage_event(action: StorageAction, bucket: str, *keys: str) -> dict[str, Any]:
    """An Object Storage trigger event, one message per key."""
    return envelope(STORAGE_EVENT_PREFIX + action, [{"bucket_id": bucket, "object_id": key} for key in keys])


def queue_event(*bodies: str, message_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """A Message Queue trigger batch carrying these bodies (message ids `message-0`, ... unless given)."""
    ids = list(message_ids) if message_ids is not None else [f"message-{n}" for n in range(len(bodies))]
    sent = str(int(time.time() * 1000))
    return envelope(
        QUEUE_EVENT_TYPE,
        [
            {
                "queue_id": f"yrn:yc:ymq:ru-central1:local:{LOCAL_QUEUE}",  # as the stack's queue
                "message": {
                    "message_id": message_id,
                    "md5_of_body": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                    "body": body,
                    "attributes": {"SentTimestamp": sent},
                    "message_attributes": {},
                    "md5_of_message_attributes": _EMPTY_MD5,
                },
            }
            for message_id, body in zip(ids, bodies, strict=True)
        ],
    )


def timer_event(payload: Mapping[str, Any] | str | None = None) -> dict[str, Any]:
    """A Timer trigger event; `payload` (the trigger's string) is absent when None."""
    details: dict[str, Any] = {"trigger_id": "local-reconcile"}
    if payload is not None:
        details["payload"] = payload if isinstance(payload, str) else json.dumps(payload)
    return envelope(TIMER_EVENT_TYPE, [details])


def http_event(
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | str = b"",
    *,
    shape: HttpShape = "direct",
    base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP request as the function receives it; `target` is the path with its query string.

    A direct call has no path, so the route travels in `?path=`; API Gateway 0.1 carries it in `url`,
    1.0 in `path`. `Authorization` and `Cookie` are stripped from direct calls, as the platform does.
    """
    parts = urlsplit(target)
    query = dict(parse_qsl(parts.query))
    given = dict(headers or {})
    kept = {
        name: value for name, value in given.items() if shape != "direct" or name.lower() not in _STRIPPED
    }
    raw = body.encode() if isinstance(body, str) else body
    event: dict[str, Any] = {
        "httpMethod": method,
        "headers": kept,
        "multiValueHeaders": {name: [value] for name, value in kept.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {name: [value] for name, value in query.items()},
        "requestContext": {
            "identity": {"sourceIp": "127.0.0.1", "userAgent": given.get("User-Agent", "")},
            "httpMethod": method,
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "requestTimeEpoch": int(time.time()),
        },
        "body": base64.b64encode(raw).decode() if base64_body else raw.decode("utf-8", errors="strict"),
        "isBase64Encoded": base64_body,
    }
    if shape == "1.0":
        event.update(
            {
                "version": "1.0",
                "resource": "/{proxy+}",
                "path": parts.path,
                "pathParameters": {},
                "parameters": {},
                "operationId": "",
            }
        )
    elif shape == "0.1":
        event.update(
            {"url": target, "path": "/{proxy+}", "params": {}, "multiValueParams": {}, "pathParams": {}}
        )
    else:
        event.update({"url": "", "params": {}, "multiValueParams": {}, "pathParams": {}})
        if parts.path not in ("", "/"):
            event["queryStringParameters"] = {**query, "path": parts.path}
    return event


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`embedpipe generate-event`'s arguments."""
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    storage = kinds.add_parser("storage", help="Object Storage trigger")
    storage.add_argument("--bucket", default="local-docs")
    storage.add_argument("--key", default="incoming/sample.md")
    storage.add_argument("--action", choices=["create", "delete", "update"], default="create")
    queue = kinds.add_parser("queue", help="Message Queue trigger")
    group = queue.add_mutually_exclusive_group()
    group.add_argument("--key", help="an object reference message")
    group.add_argument("--text", help="an inline record message")
    queue.add_argument("--id", default="note-1", help="the inline record's id")
    queue.add_argument("--bucket")
    timer = kinds.add_parser("timer", help="Timer trigger (reconcile)")
    timer.add_argument("--dry-run", action="store_true")
    timer.add_argument("--prefix")
    timer.add_argument("--max-tokens", type=int)
    http = kinds.add_parser("http", help="HTTP: a direct call or an API Gateway payload")
    http.add_argument("--method", default="POST")
    http.add_argument("--path", default="/v1/embeddings")
    http.add_argument("--body", default='{"input": "hello"}')
    http.add_argument("--api-key")
    http.add_argument("--payload", choices=["direct", "0.1", "1.0"], default="1.0")
    http.add_argument("--base64", action="store_true", help="send the body base64-encoded")


_ACTIONS: dict[str, StorageAction] = {
    "create": "ObjectCreate",
    "delete": "ObjectDelete",
    "update": "ObjectUpdate",
}


def generate(args: argparse.Namespace) -> dict[str, Any]:
    """The event `embedpipe generate-event` prints."""
    if args.kind == "storage":
        return storage_event(_ACTIONS[args.action], args.bucket, args.key)
    if args.kind == "queue":
        body: dict[str, Any] = (
            {"id": args.id, "text": args.text} if args.text else {"key": args.key or "incoming/sample.md"}
        )
        if args.bucket and "key" in body:
            body["bucket"] = args.bucket
        return queue_event(json.dumps(body, ensure_ascii=False), message_ids=[str(uuid.uuid4())])
    if args.kind == "timer":
        payload: dict[str, Any] = {"action": "reconcile", "dry_run": args.dry_run}
        if args.prefix is not None:
            payload["prefix"] = args.prefix
        if args.max_tokens is not None:
            payload["max_tokens"] = args.max_tokens
        return timer_event(payload)
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["X-Api-Key"] = args.api_key
    return http_event(
        args.method.upper(), args.path, headers, args.body, shape=args.payload, base64_body=args.base64
    )
