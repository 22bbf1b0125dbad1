"""Well-formed trigger events for `embedpipe generate-event`, in the shapes Yandex documents."""

from __future__ import annotations

import argparse
import base64
import json
import time
import uuid
from typing import Any

from devstack.http_gateway import to_event


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    http.add_argument("--payload", choices=["direct", "1.0"], default="1.0")
    http.add_argument("--base64", action="store_true", help="send the body base64-encoded")


def _envelope(event_type: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": [
            {
                "event_metadata": {
                    "event_id": str(uuid.uuid4()),
                    "event_type": event_type,
                    "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
                    "cloud_id": "local",
                    "folder_id": "local",
                },
                "details": details,
            }
        ]
    }


def generate(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == "storage":
        action = {"create": "ObjectCreate", "delete": "ObjectDelete", "update": "ObjectUpdate"}[args.action]
        return _envelope(
            f"yandex.cloud.events.storage.{action}", {"bucket_id": args.bucket, "object_id": args.key}
        )
    if args.kind == "queue":
        body: dict[str, Any] = (
            {"id": args.id, "text": args.text} if args.text else {"key": args.key or "incoming/sample.md"}
        )
        if args.bucket and "key" in body:
            body["bucket"] = args.bucket
        message_id = str(uuid.uuid4())
        return _envelope(
            "yandex.cloud.events.messagequeue.QueueMessage",
            {
                "queue_id": "yrn:yc:ymq:ru-central1:local:embed-jobs",
                "message": {
                    "message_id": message_id,
                    "body": json.dumps(body, ensure_ascii=False),
                    "attributes": {"SentTimestamp": str(int(time.time() * 1000))},
                    "message_attributes": {},
                },
            },
        )
    if args.kind == "timer":
        payload = {"action": "reconcile", "dry_run": args.dry_run}
        if args.prefix is not None:
            payload["prefix"] = args.prefix
        if args.max_tokens is not None:
            payload["max_tokens"] = args.max_tokens
        return _envelope(
            "yandex.cloud.events.serverless.triggers.TimerMessage",
            {"trigger_id": "local-reconcile", "payload": json.dumps(payload)},
        )
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["X-Api-Key"] = args.api_key
    event = to_event(args.method.upper(), args.path, headers, args.body.encode(), args.payload)
    if args.base64:
        event["body"] = base64.b64encode(args.body.encode()).decode()
        event["isBase64Encoded"] = True
    return event
