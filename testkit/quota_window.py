"""A per-second quota as Yandex's services enforce it, for the emulators (embeddings and OCR)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class QuotaWindow:
    """A per-second quota as the service enforces it: a sliding one-second window over the requests it
    admitted. It asks `rps` on every request, so a quota changed while clients run applies at once."""

    def __init__(self, rps: Callable[[], float]) -> None:
        self._rps = rps
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._starts and now - self._starts[0] >= 1.0:
                self._starts.popleft()
            if len(self._starts) >= self._rps():
                return False
            self._starts.append(max(now, self._starts[-1] if self._starts else now))
            return True

    def charge(self, more: int) -> None:
        """An admitted request that counts as `1 + more` (an asynchronous PDF: one per page): the rest
        are booked after it at the quota's pace, so the window stays full until they are paid off and
        a client that sends sooner is refused, as the service counts each page as a request."""
        with self._lock:
            last = self._starts[-1] if self._starts else time.monotonic()
            step = 1.0 / self._rps()
            self._starts.extend(last + step * n for n in range(1, more + 1))
