"""The OCR emulator's async operations: started by recognizeTextAsync, read by the operations endpoint
and getRecognition.

They live in the emulator's process, behind one lock, for every client thread to see; how long one
stays pending is read from the emulator's config at each read, so a test can change it as it goes.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from testkit.ocr_answers import INVALID_ARGUMENT, NOT_FOUND, OcrError, invalid


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Operation:
    """An async recognition: its results are computed when it starts and shown once it is done."""

    id: str
    results: list[dict[str, Any]]
    fails: bool
    failure_code: int = INVALID_ARGUMENT  # a failed operation's google.rpc code: 3 the content's fault
    created: float = field(default_factory=time.monotonic)
    created_at: str = field(default_factory=_timestamp)
    modified_at: str = ""
    polls: int = 0
    done: bool = False

    def as_json(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "id": self.id,
            "description": "OCR async recognition",
            "createdAt": self.created_at,
            "createdBy": "testkit-ocr-emulator",
            "modifiedAt": self.modified_at or self.created_at,
            "done": self.done,
            "metadata": None,
        }
        if self.done and self.fails:
            reply["error"] = {**self.error().body(), "details": []}
        elif self.done:
            reply["response"] = {"@type": "type.googleapis.com/google.protobuf.Empty"}
        return reply

    def error(self) -> OcrError:
        if self.failure_code != INVALID_ARGUMENT:
            return OcrError(
                500, self.failure_code, f"recognition of operation {self.id} failed: internal error"
            )
        return invalid(f"recognition of operation {self.id} failed: the document could not be recognized")


@dataclass(frozen=True, slots=True)
class Readiness:
    """When an operation is done: once it is `after_s` seconds old and `after_polls` reads of it have
    answered that it is not (0: the first read finds it done), or never."""

    after_s: float = 0.0
    after_polls: int = 0
    never: bool = False
    per_page_s: float = 0.0  # and this long for each of its pages


class Operations:
    """The operations the emulator started, held in its process for every client thread to see."""

    def __init__(self) -> None:
        self._operations: dict[str, Operation] = {}
        self._lock = threading.Lock()

    def start(
        self, results: list[dict[str, Any]], *, fails: bool, failure_code: int = INVALID_ARGUMENT
    ) -> Operation:
        operation = Operation("fbv" + uuid.uuid4().hex[:17], results, fails, failure_code)
        with self._lock:
            self._operations[operation.id] = operation
        return operation

    def read(self, operation_id: str, readiness: Readiness, *, poll: bool) -> dict[str, Any]:
        """The operation's JSON as of now; `poll` counts this read towards `readiness.after_polls`."""
        with self._lock:
            operation = self._find(operation_id)
            self._advance(operation, readiness, poll=poll)
            return operation.as_json()

    def results(self, operation_id: str, readiness: Readiness) -> list[dict[str, Any]]:
        """A done operation's page results; a 404 while it runs, its error once it failed."""
        with self._lock:
            operation = self._find(operation_id)
            self._advance(operation, readiness, poll=False)
            if not operation.done:
                raise OcrError(404, NOT_FOUND, f"Recognition of operation {operation_id} is not ready yet")
            if operation.fails:
                raise operation.error()
            return operation.results

    def _find(self, operation_id: str) -> Operation:
        if (operation := self._operations.get(operation_id)) is None:
            raise OcrError(404, NOT_FOUND, f"Operation {operation_id} not found")
        return operation

    @staticmethod
    def _advance(operation: Operation, readiness: Readiness, *, poll: bool) -> None:
        if operation.done or readiness.never:
            return
        takes = readiness.after_s + readiness.per_page_s * len(operation.results)
        aged = time.monotonic() - operation.created >= takes
        if aged and operation.polls >= readiness.after_polls:
            operation.done = True
            operation.modified_at = _timestamp()
        elif poll:
            operation.polls += 1
