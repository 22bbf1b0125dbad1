"""Yandex Monitoring's write API: one invocation's counters (metrics.py) in one request, never failing it.

`POST {METRICS_URL}?folderId=...&service=custom` with the invocation's IAM token (or its API key),
the body `{"ts", "labels": {"deployment"}, "metrics": [{"name", "labels": {"trigger", "bucket"},
"type": "DGAUGE", "value"}]}`.

Why DGAUGE, one point per invocation holding what that invocation did: the points of every instance
land in one series per name, trigger and bucket, and a chart or an alert sums them over its window
(downsampling "sum", or `sum()`): the total is right however many instances run, and whenever they
start or stop. COUNTER and RATE are running totals per writer: each instance would need a series of
its own (a label per instance, without bound, where Monitoring allows 1,000 values per label), and
a cold start would reset its total. A point's time is the invocation's end to the millisecond, so
that instances finishing in the same second write points of their own (the docs do not say whether
a second point at the same time replaces the first).

A write fails quietly: a short timeout (cut to the invocation's time left), and every failure (an
answer other than 200, a transport error, an answer that is not JSON, a bug) is logged once, as
`metrics_not_written` at WARN, never raised. After a timeout or a transport failure the instance
skips its writes for PAUSE_S, so that a Monitoring outage does not slow every invocation.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from embedding_pipeline.clients.credentials import Credentials
from embedding_pipeline.deadline import time_left
from embedding_pipeline.logs import get_logger
from embedding_pipeline.metrics import InvocationMetrics, Point
from embedding_pipeline.redact import redact
from embedding_pipeline.settings import Settings

TIMEOUT_S = 1.5  # Monitoring answers in tens of milliseconds; an invocation never waits longer
PAUSE_S = 60.0  # no writes from this instance for this long after a timeout or a transport failure
_SPARE_S = 0.25  # left between the write's timeout and the platform's end of the invocation
_SHORTEST_S = 0.2  # with less time than this for it, the write is not attempted

log = get_logger()


class _NotWritten(Exception):
    """Why the counters were not written, for the one WARN line."""


class MonitoringWriter:
    """Built once per instance; `write` is called once per invocation, at its end. Its HTTP client
    is made by the first write: an instance with METRICS=false, or with nothing to count, has none."""

    def __init__(
        self, settings: Settings, transport: httpx.AsyncBaseTransport | None, verify: ssl.SSLContext
    ) -> None:
        self._settings = settings
        self._transport = transport
        self._verify = verify
        self._http: httpx.AsyncClient | None = None
        self._paused_until = 0.0

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def write(
        self, metrics: InvocationMetrics, credentials: Credentials | None, *, deployment: str, context: Any
    ) -> int:
        """Send the counters that are not zero, unless METRICS=false; how many Monitoring took (0:
        none, or the write failed). `context`: the invocation's, for its folder and time left."""
        points = metrics.points()
        if not self._settings.metrics or not points:
            return 0
        folder_id = self._settings.yc_folder_id or getattr(context, "function_folder_id", None)
        try:
            return await self._send(points, folder_id, deployment, credentials, time_left(context))
        except _NotWritten as exc:
            reason = str(exc)
        except (TimeoutError, httpx.TransportError) as exc:
            # Out of reach: this instance's next invocations do not wait for it too.
            self._paused_until = time.monotonic() + PAUSE_S
            reason = f"{type(exc).__name__}: {redact(str(exc))[:200] or 'no answer in time'}"
        except Exception as exc:  # the rest of what httpx raises (HTTPX_ERRORS), and a bug here too
            reason = f"{type(exc).__name__}: {redact(str(exc))[:200]}"
        log.warning("metrics_not_written", reason=reason, points=len(points))
        return 0

    async def _send(
        self,
        points: list[Point],
        folder_id: str | None,
        deployment: str,
        credentials: Credentials | None,
        time_left_s: float | None,
    ) -> int:
        if (paused_s := self._paused_until - time.monotonic()) > 0:
            raise _NotWritten(f"paused for {paused_s:.0f} s more after a failed write")
        authorization = credentials.monitoring_authorization() if credentials is not None else None
        if authorization is None:
            raise _NotWritten("no IAM token or API key")
        if not folder_id:
            raise _NotWritten("no folder: set YC_FOLDER_ID")
        timeout = TIMEOUT_S if time_left_s is None else min(TIMEOUT_S, time_left_s - _SPARE_S)
        if timeout < _SHORTEST_S:
            raise _NotWritten("no time left before the function's timeout")
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, verify=self._verify)
        async with asyncio.timeout(timeout):  # the whole write: connecting, sending, the answer
            response = await self._http.post(
                self._settings.metrics_url,
                params={"folderId": folder_id, "service": "custom"},
                json=body(points, deployment),
                headers={"Authorization": authorization},
                timeout=None,
            )
        return _written(response, len(points))


def body(points: list[Point], deployment: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "ts": now,
        "labels": {"deployment": deployment},
        "metrics": [
            {
                "name": point.name,
                "labels": {"trigger": point.trigger, "bucket": point.bucket},
                "type": "DGAUGE",
                "value": point.value,
            }
            for point in points
        ],
    }


def _written(response: httpx.Response, sent: int) -> int:
    """How many metrics Monitoring says it wrote; _NotWritten if it refused or answered garbled."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    message = (payload.get("errorMessage") or payload.get("message")) if isinstance(payload, dict) else None
    if response.status_code != 200:
        detail = f": {redact(str(message))[:200]}" if message else ""
        raise _NotWritten(f"Monitoring answered {response.status_code}{detail}")
    if not isinstance(payload, dict):
        raise _NotWritten("Monitoring answered 200 with a body that is not a JSON object")
    if message:
        raise _NotWritten(f"Monitoring refused: {redact(str(message))[:200]}")
    # The reference names it writtenMetricsCount (an int64 as a string), the how-to metrics_written.
    count = payload.get("writtenMetricsCount", payload.get("metrics_written"))
    try:
        written = sent if count is None else int(count)
    except (TypeError, ValueError):
        raise _NotWritten(f"Monitoring answered 200 with a count that is no number: {count!r:.50}") from None
    if written < sent:
        raise _NotWritten(f"Monitoring wrote {written} of {sent} metrics")
    return written
