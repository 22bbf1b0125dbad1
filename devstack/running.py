"""A running local stack, as other processes see it: its ports in a file, and the ports it needs.

`make run` writes `stack.json` into its data directory while it runs, so `embedpipe` in a second
terminal finds it without `LOCAL_*` exports. Before starting, the stack makes sure its ports are
free: a port held by another program (or another stack) is refused with a message that names it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "stack.json"


class StackError(Exception):
    """The local stack cannot start, or is not there: the message says what to do."""


@dataclass(frozen=True, slots=True)
class RunningStack:
    pid: int
    s3_port: int
    embeddings_port: int
    http_port: int
    bucket: str
    pg_port: int | None = None  # the vector index's PostgreSQL
    metrics_url: str | None = None  # the stand-in for Monitoring's write API (monitoring_server.py)
    ocr_url: str | None = None  # the stand-in for Vision OCR (ocr_server.py), when tesseract is there

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def write(self, data_dir: Path) -> None:
        (data_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))


def find_running(data_dir: Path) -> RunningStack | None:
    """The stack whose data directory this is, if its process is still alive."""
    try:
        stack = RunningStack(**json.loads((data_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return stack if _alive(stack.pid) else None


def forget(data_dir: Path) -> None:
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def require_free_ports(ports: dict[str, int]) -> None:
    """Refuse to start on ports something already listens on; `ports` maps setting names to ports.

    Every taken port is named at once, with one command that moves all of them to free ones: a
    second `make run` beside the first should cost one retry, not one per port."""
    taken = {name: number for name, number in ports.items() if not _bindable(number)}
    if not taken:
        return
    in_use = ", ".join(f"{number} ({name})" for name, number in taken.items())
    avoid = set(ports.values())
    moves = " ".join(f"{name}={_free_port_near(number, avoid)}" for name, number in taken.items())
    noun = "port" if len(taken) == 1 else "ports"
    raise StackError(
        f"{noun} {in_use} already in use: is another `make run` running? "
        f"Stop it, or start this one elsewhere: {moves} make run"
    )


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        # As the servers bind (Go and http.server set it): a port left in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port_near(port: int, avoid: set[int]) -> int:
    """A free port near `port` (8333 -> 8334..., then 18333...) that this stack does not need."""
    candidates: list[int] = [*range(port + 1, port + 10), *range(port + 10000, port + 10010)]
    for candidate in candidates:
        if candidate < 65536 and candidate not in avoid and _bindable(candidate):
            avoid.add(candidate)
            return candidate
    with socket.socket() as probe:  # a crowded machine: any port the system has free
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    avoid.add(free)
    return free


def answers(port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        probe.settimeout(timeout_s)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
