"""Function instances for the local stack, as the platform runs them: several at once, one request each.

Yandex Cloud Functions serves concurrent invocations of a Python function from separate instances,
each built once (settings, HTTP pools, rate limiter, event loop) and handling one request at a time.
So does this pool: each worker thread builds its instance on first use, as `index.py` builds one,
and keeps it. A long invocation (a large document) holds one instance; HTTP requests, other uploads,
deletes and the timer are served by the others.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from devstack.context import LocalContext
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import Settings
from handlers import dispatch

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
_STOP = None


@dataclass
class _Instance:
    runtime: Runtime
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    running: asyncio.Task[dict[str, Any]] | None = None


class FunctionInstances:
    def __init__(self, settings: Settings, size: int = 4, transports: Transports | None = None) -> None:
        self._settings = settings
        self._transports = transports
        self._requests: queue.Queue[tuple[dict[str, Any], Any, Future[dict[str, Any]]] | None] = queue.Queue()
        self._instances: list[_Instance] = []
        self._lock = threading.Lock()
        self._closed = False
        # Daemon threads: stopping the stack must not wait for a long document to finish.
        self._threads = [
            threading.Thread(target=self._serve, name=f"function-instance-{number}", daemon=True)
            for number in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, event: dict[str, Any], context: Any) -> Future[dict[str, Any]]:
        """Hand the event to a free instance, or queue it until one is free (as the platform does)."""
        reply: Future[dict[str, Any]] = Future()
        if self._closed:
            reply.cancel()
        else:
            self._requests.put((event, context, reply))
        return reply

    def trigger(self, event: dict[str, Any], *, attempts: int = 3, retry_after_s: float = 10.0) -> None:
        """Deliver as a Yandex trigger does, without waiting: an invocation that raised is delivered
        again, `attempts` times in all, `retry_after_s` apart; then the event is dropped with a log line
        (a trigger without a dead-letter queue does the same). The timer finishes what is left."""
        reply = self.submit(event, LocalContext())

        def done(finished: Future[dict[str, Any]]) -> None:
            error = None if finished.cancelled() else finished.exception()
            if error is None or self._closed:  # stopping cancels invocations: not a failed delivery
                return
            left = attempts - 1
            _log("local_delivery_failed", error=f"{type(error).__name__}: {error}", retries_left=left)
            if left > 0:
                retry = threading.Timer(
                    retry_after_s, self.trigger, (event,), {"attempts": left, "retry_after_s": retry_after_s}
                )
                retry.daemon = True
                retry.start()

        reply.add_done_callback(done)

    def invoke(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Invoke and wait for the reply; what the handler raised is raised here."""
        return self.submit(event, context).result()

    def handler(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """`invoke` with the handler's signature, for callers that take one (the HTTP gateway)."""
        return self.invoke(event, context)

    def _serve(self) -> None:
        instance: _Instance | None = None
        while (request := self._requests.get()) is not _STOP:
            event, context, reply = request
            if not reply.set_running_or_notify_cancel():
                continue
            if isinstance(context, LocalContext):
                context.started = time.monotonic()  # the platform's clock starts with the invocation
            try:
                if instance is None:
                    instance = _Instance(Runtime(self._settings, self._transports))
                    with self._lock:
                        self._instances.append(instance)
                instance.running = instance.loop.create_task(dispatch(instance.runtime, event, context))
                reply.set_result(instance.loop.run_until_complete(instance.running))
            except BaseException as exc:  # the caller sees what the invocation raised, as a trigger would
                reply.set_exception(exc)
            finally:
                if instance is not None:
                    instance.running = None

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop: drop queued events, cancel running invocations (they checkpoint what they paid for),
        close the pools. Closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        while True:
            try:
                queued = self._requests.get_nowait()
            except queue.Empty:
                break
            if queued is not None:
                queued[2].cancel()
        for _ in self._threads:
            self._requests.put(_STOP)
        with self._lock:
            instances = list(self._instances)
        for instance in instances:
            task = instance.running
            if task is not None:
                instance.loop.call_soon_threadsafe(task.cancel)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        for instance in instances:
            if instance.running is None and not instance.loop.is_running():
                instance.loop.run_until_complete(instance.runtime.aclose())
                instance.loop.close()


def _log(message: str, **fields: object) -> None:
    """The local platform's own lines, in the function's JSON log shape."""
    print(json.dumps({"msg": message, "level": "WARN", **fields}, ensure_ascii=False), flush=True)
