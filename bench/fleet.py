"""Function instances as processes (bench/worker.py), scheduled as the platform does: each serves
one invocation at a time, an event goes to a free instance, and an instance that dies is replaced
by a fresh one (a cold start). `submit` has the shape devstack's trigger emulators call.

What every invocation took (seconds, the instance's peak RSS) is kept for the benchmark's figures.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class InvocationFailed(Exception):
    """The invocation raised, or its instance died: a trigger delivers the event again."""


@dataclass
class Invocation:
    kind: str
    seconds: float
    peak_rss_mb: float
    failed: bool


@dataclass
class _Worker:
    process: subprocess.Popen[str]
    running: str | None = None  # the kind of event it works on now


@dataclass
class FleetStats:
    invocations: list[Invocation] = field(default_factory=list)
    restarts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fleet:
    def __init__(self, size: int, env: dict[str, str], *, timeout_s: float = 60.0) -> None:
        self._env = env
        self._timeout_s = timeout_s
        self._requests: queue.Queue[tuple[dict[str, Any], Future[dict[str, Any]]] | None] = queue.Queue()
        self.stats = FleetStats()
        self.workers: list[_Worker] = []
        self._closed = False
        self._threads = [threading.Thread(target=self._serve, args=(n,), daemon=True) for n in range(size)]
        for _ in range(size):
            self.workers.append(_Worker(self._start()))
        for thread in self._threads:
            thread.start()

    def _start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.worker"],
            cwd=ROOT,
            env=self._env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        process.stdout.readline()  # {"ready": true}: the cold start is over
        return process

    def submit(self, event: dict[str, Any], _context: object = None) -> Future[dict[str, Any]]:
        reply: Future[dict[str, Any]] = Future()
        self._requests.put((event, reply))
        return reply

    def _serve(self, number: int) -> None:
        while (request := self._requests.get()) is not None:
            event, reply = request
            if not reply.set_running_or_notify_cancel():
                continue
            worker = self.workers[number]
            worker.running = _kind(event)
            answer = self._invoke(worker, event)
            worker.running = None
            failed = answer is None or "error" in answer
            with self.stats.lock:
                self.stats.invocations.append(
                    Invocation(
                        _kind(event),
                        float((answer or {}).get("seconds", 0.0)),
                        float((answer or {}).get("peak_rss_mb", 0.0)),
                        failed,
                    )
                )
            if answer is None:  # the instance died: the platform starts another
                with self.stats.lock:
                    self.stats.restarts += 1
                if not self._closed:
                    self.workers[number] = _Worker(self._start())
                reply.set_exception(InvocationFailed("the instance died"))
            elif "error" in answer:
                reply.set_exception(InvocationFailed(str(answer["error"])))
            else:
                reply.set_result(answer["reply"])

    def _invoke(self, worker: _Worker, event: dict[str, Any]) -> dict[str, Any] | None:
        process = worker.process
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(json.dumps({"event": event, "timeout_s": self._timeout_s}) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        if not line:
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer

    def kill_running(self, kind: str) -> bool:
        """SIGKILL an instance that works on an event of this kind now (a crash); False if none does."""
        for worker in self.workers:
            if worker.running == kind:
                os.killpg(worker.process.pid, signal.SIGKILL)
                return True
        return False

    def close(self) -> None:
        self._closed = True
        for _ in self._threads:
            self._requests.put(None)
        for worker in self.workers:
            if worker.process.stdin is not None:
                worker.process.stdin.close()
        for worker in self.workers:
            try:
                worker.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
        for thread in self._threads:
            thread.join(timeout=10)


def _kind(event: dict[str, Any]) -> str:
    """What an event asks for: a reconcile step, object references, or the timer's tick."""
    messages = event.get("messages") or [{}]
    if "trigger_id" in messages[0].get("details", {}):
        return "tick"
    bodies = [str(message.get("details", {}).get("message", {}).get("body", "")) for message in messages]
    return "step" if any('"reconcile"' in body for body in bodies) else "batch"
