"""What the OCR emulator meters: its stats (its quota window is testkit/quota_window.py).

The stats record every request with its arrival time, endpoint and status, so a test or a benchmark
can set the rate it achieved against the quota, and the pages each request was charged, as Yandex
bills them (each page of an async PDF is one recognition).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RECOGNIZE, RECOGNIZE_ASYNC, OPERATION, GET_RECOGNITION = (
    "recognizeText",
    "recognizeTextAsync",
    "operations",
    "getRecognition",
)
ENDPOINTS = (RECOGNIZE, RECOGNIZE_ASYNC, OPERATION, GET_RECOGNITION)
COUNTED = frozenset({RECOGNIZE, RECOGNIZE_ASYNC, GET_RECOGNITION})  # what the quota counts


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # time.time() when the request arrived
    endpoint: str  # one of ENDPOINTS, or the path for anything else
    status: int
    pages: int  # recognitions charged: 1 for a recognizeText answered, the pages of an operation started
    operation_id: str | None
    authorization: str
    folder_id: str | None
    data_logging: str | None  # the x-data-logging-enabled header, None where it was not sent


@dataclass
class OcrStats:
    """What the emulator answered: every request (also the refused ones) and every operation started."""

    requests: list[RequestRecord] = field(default_factory=list)
    operation_pages: dict[str, int] = field(default_factory=dict)  # pages of each operation started
    lock: threading.Lock = field(default_factory=threading.Lock)

    def select(self, endpoints: Iterable[str] = ENDPOINTS, status: int | None = None) -> list[RequestRecord]:
        """The requests to some endpoints (with some status), in arrival order."""
        wanted = set(endpoints)
        with self.lock:
            return [r for r in self.requests if r.endpoint in wanted and status in (None, r.status)]

    @property
    def pages_recognised(self) -> int:
        """Pages charged, as the service bills: one per recognizeText, each page of an async PDF."""
        with self.lock:
            return sum(record.pages for record in self.requests)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            statuses = Counter(f"{r.endpoint} {r.status}" for r in self.requests)
            return {
                "requests": len(self.requests),
                "throttled": sum(r.status == 429 for r in self.requests),
                "by_endpoint_and_status": dict(sorted(statuses.items())),
                "operations_started": len(self.operation_pages),
                "pages_recognised": sum(r.pages for r in self.requests),
            }
