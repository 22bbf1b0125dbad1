"""A loopback stand-in for Yandex Monitoring's write API: `make run` points METRICS_URL at it.

A write is checked as Monitoring takes it (`folderId` and `service=custom` in the query, an
`Authorization` header, a JSON body whose metrics each have a name and a numeric value), answered
as the reference answers (`{"writtenMetricsCount": "N"}`, or an `errorMessage` with a 400 or 401),
and appended as one JSON line to `metrics.jsonl` in the stack's data directory, with the time it
arrived and the authorization's scheme (`Bearer` or `Api-Key`, never the credential).
`embedpipe status` shows the last hour of it (`recent_totals`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devstack.loopback import LoopbackServer, Running

METRICS_FILE = "metrics.jsonl"
WRITE_PATH = "/monitoring/v2/data/write"
_MAX_BODY_BYTES = 1024 * 1024


class MonitoringServer(Running):
    """The write endpoint on 127.0.0.1, appending what it accepts to `path`."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler(self), port)

    @property
    def url(self) -> str:
        """What METRICS_URL is set to."""
        return self._server.url + WRITE_PATH

    def accept(self, folder_id: str, scheme: str, body: dict[str, Any]) -> int:
        """Append one write; how many metrics it held."""
        arrived = {"received_at": time.time(), "folderId": folder_id, "authorization": scheme}
        line = json.dumps(arrived | body, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line + "\n")
        return len(body["metrics"])

    def writes(self) -> list[dict[str, Any]]:
        return list(_read(self.path))

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def invalid_write(query: dict[str, list[str]], authorization: str | None, body: Any) -> str | None:
    """Why Monitoring would refuse this write, or None."""
    if not query.get("folderId", [""])[0]:
        return "folderId is required"
    if query.get("service", [""])[0] != "custom":
        return "service must be custom"
    if not authorization:
        return "no Authorization header"
    if not isinstance(body, dict) or not isinstance(body.get("metrics"), list) or not body["metrics"]:
        return "the body must be a JSON object with a list of metrics"
    return next(filter(None, map(_invalid_metric, body["metrics"])), None)


def _invalid_metric(metric: Any) -> str | None:
    if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
        return "every metric needs a name"
    value = metric.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"metric {metric['name']}: the value must be a number"
    if not isinstance(metric.get("labels", {}), dict):
        return f"metric {metric['name']}: labels must be an object"
    return None


def _handler(server: MonitoringServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the function logs its own writes' failures."""

        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != WRITE_PATH:
                self._reply(404, {"errorMessage": f"no such method: {url.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY_BYTES:
                self._reply(413, {"errorMessage": "body too large"})
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                body = None
            query = parse_qs(url.query)
            authorization = self.headers.get("Authorization")
            if (problem := invalid_write(query, authorization, body)) is not None:
                self._reply(401 if authorization is None else 400, {"errorMessage": problem})
                return
            assert authorization is not None  # invalid_write refuses a write without
            written = server.accept(query["folderId"][0], authorization.split(" ")[0], body)
            self._reply(200, {"writtenMetricsCount": str(written)})

    return Handler


def recent_totals(path: Path, *, within_s: float = 3600.0, now: float | None = None) -> dict[str, Any] | None:
    """What the writes of the last `within_s` seconds add up to, by metric (and by trigger within
    it), with the last write as it came; None when nothing was written then."""
    since = (time.time() if now is None else now) - within_s
    recent = [write for write in _read(path) if write.get("received_at", 0) >= since]
    if not recent:
        return None
    totals: dict[str, dict[str, float]] = {}
    for write in recent:
        for metric in write["metrics"]:
            by_trigger = totals.setdefault(metric["name"], {"total": 0})
            trigger = str(metric.get("labels", {}).get("trigger", "unknown"))
            by_trigger["total"] += metric["value"]
            by_trigger[trigger] = by_trigger.get(trigger, 0) + metric["value"]
    last = recent[-1]
    return {
        "writes": len(recent),
        "totals": dict(sorted(totals.items())),
        "last_write": {
            "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last["received_at"])),
            "labels": last.get("labels", {}),
            "metrics": last["metrics"],
        },
    }


def _read(path: Path) -> Iterator[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue  # a line cut short by a stop mid-write
