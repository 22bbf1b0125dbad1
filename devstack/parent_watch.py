"""Stop the local stack with the `make run` that started it.

GNU make passes a SIGTERM on to its children, but a SIGINT sent to make alone (an IDE's stop button,
`kill -INT <make's pid>`, `timeout -s INT make run`) is only handled: make assumes the terminal sent
it to the whole process group, resets its handler to the default and waits for its children for as
long as they run. Make's caught-signal mask in /proc shows that reset, so the stack watches it, and
watches for make itself going away (the stack is then adopted by another process).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

_SIGINT_BIT = 1 << (signal.SIGINT - 1)


def caught_signals(pid: int) -> int | None:
    """The mask of signals `pid` handles (`SigCgt` in /proc), or None where there is no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return int(line.split()[1], 16)
    return None


def parent_stopped(parent: int, caught_at_start: int | None) -> bool:
    """Whether the process that started us is gone, or has handled a SIGINT since we started."""
    if os.getppid() != parent:
        return True
    if caught_at_start is None or not caught_at_start & _SIGINT_BIT:
        return False  # no /proc, or a parent that never handled SIGINT: only its exit tells
    now = caught_signals(parent)
    return now is not None and not now & _SIGINT_BIT


def started_by_make(environ: Mapping[str, str]) -> bool:
    return "MAKELEVEL" in environ


def stop_with_parent(stop: Callable[[], None], *, interval_s: float = 0.5) -> threading.Event:
    """Call `stop` once the parent stops (see the module's note); set the returned event to stop watching."""
    parent = os.getppid()
    caught_at_start = caught_signals(parent)
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval_s):
            if parent_stopped(parent, caught_at_start):
                done.set()
                stop()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    return done
