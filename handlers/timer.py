"""Timer (cron) trigger: reconcile the bucket named by SOURCE_BUCKET.

The payload is a JSON string; empty or absent means defaults:
    {"action": "reconcile", "prefix": "incoming/", "dry_run": false, "max_tokens": 2000000}
(and, for a dry run that stopped for time, "after": the key its reply's `resume_after` names).
A payload that cannot be understood is logged and answered, never raised: a timer would retry it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from embedding_pipeline.logs import get_logger
from embedding_pipeline.runtime import Runtime
from handlers.events import TimerMessage
from handlers.validation import validation_message

log = get_logger()


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["reconcile"] = "reconcile"
    prefix: str | None = None
    dry_run: bool = False
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    after: str | None = None  # a dry run: start after this key (the `resume_after` of one that stopped)


def parse_payload(payload: str | None) -> ReconcileRequest:
    if payload is None or not payload.strip():
        return ReconcileRequest()
    return ReconcileRequest.model_validate_json(payload)


async def handle(runtime: Runtime, event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        message = TimerMessage.model_validate(event["messages"][0])
        request = parse_payload(message.details.payload)
    except ValidationError as exc:
        log.error("timer_payload_invalid", reason=validation_message(exc))
        return {"error": "invalid timer payload", "reason": validation_message(exc)}
    bucket, source_prefix = runtime.settings.source_bucket, runtime.settings.source_prefix
    if request.prefix is not None and not request.prefix.startswith(source_prefix):
        # Reconcile embeds what it lists: a prefix outside SOURCE_PREFIX would embed private objects.
        reason = f"prefix {request.prefix!r} is outside SOURCE_PREFIX={source_prefix!r}"
        log.error("timer_payload_invalid", reason=reason)
        return {"error": "invalid timer payload", "reason": reason}
    if bucket is None:
        log.error("reconcile_unconfigured", reason="SOURCE_BUCKET is not set")
        return {"error": "SOURCE_BUCKET is not set"}
    # Imported here: a cold start for any other event does not load reconcile.
    from embedding_pipeline.pipeline.reconcile.sweep import reconcile  # noqa: PLC0415

    async with runtime.invocation(context, "timer") as invocation:
        return await reconcile(
            invocation,
            bucket,
            prefix=request.prefix,
            dry_run=request.dry_run,
            max_tokens=request.max_tokens,
            after=request.after,
        )
