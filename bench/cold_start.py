"""Cold start: a fresh interpreter importing `index` and serving a first small event.

Target: importing index costs at most 1.2 times importing httpx, pydantic and structlog alone, and
well under a third of importing the `openai` client. Medians of repeated runs, interpreter start-up
(`python -c pass`) subtracted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 15
FIRST_EVENT = (
    "import index; index.handler({'httpMethod': 'GET', 'headers': {}, 'url': '', "
    "'queryStringParameters': {'path': '/healthz'}}, None)"
)
CANDIDATES = {
    "python -c pass": "pass",
    "httpx + pydantic + structlog": "import httpx, pydantic, structlog",
    # The same three libraries put to their least use: `import pydantic` and `import httpx` load
    # lazily, so the line above excludes pydantic's model machinery, httpcore/h11 and the CA bundle.
    "same, used once": (
        "import asyncio, httpx, structlog\nfrom pydantic import BaseModel\n"
        "class M(BaseModel):\n    x: int\n"
        "M(x=1); httpx.AsyncClient(); structlog.get_logger().info('x'); asyncio.Runner()"
    ),
    "import index": "import index",
    "import index + first event": FIRST_EVENT,
    "openai client": "import openai",
}
# Yandex's own SDK pulls grpcio and protobuf: timed in a venv of its own (.venv/peers, built by
# `make bench` from bench/requirements-peers.txt), so that it never enters the function's or the
# developers' environment.
SDK_CODE = "from yandex_ai_studio_sdk import AIStudio; AIStudio(folder_id='b1gbench', auth='AQVN-bench')"
PEERS_VENV = ROOT / ".venv" / "peers"
SDK_NAME = "yandex-ai-studio-sdk (client created)"


def peers_python() -> str | None:
    """The peers' venv python (`make bench` installs the SDK there), or None where it is missing."""
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        return None
    check = subprocess.run(
        [str(python), "-c", "import yandex_ai_studio_sdk"], capture_output=True, check=False
    )
    return str(python) if check.returncode == 0 else None


def median_ms(code: str, python: str = sys.executable) -> float | None:
    env = {**os.environ, "YC_FOLDER_ID": "b1gbench", "HTTP_API_KEYS": "k", "PYTHONDONTWRITEBYTECODE": "1"}
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        result = subprocess.run([python, "-c", code], cwd=ROOT, env=env, capture_output=True, check=False)
        if result.returncode != 0:
            return None
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> dict[str, object]:
    raw = {name: median_ms(code) for name, code in CANDIDATES.items()}
    sdk_python = peers_python()
    raw[SDK_NAME] = median_ms(SDK_CODE, sdk_python) if sdk_python else None
    base = raw["python -c pass"] or 0.0
    net = {
        name: (None if value is None else round(value - base, 1))
        for name, value in raw.items()
        if name != "python -c pass"
    }
    stack, index, openai = net["httpx + pydantic + structlog"], net["import index"], net["openai client"]
    used = net["same, used once"]
    return {
        "interpreter_ms": round(base, 1),
        "import_ms": net,
        "index_vs_stack": round(index / stack, 2) if index and stack else None,
        "index_vs_stack_used": round(index / used, 2) if index and used else None,
        "index_vs_openai": round(index / openai, 2) if index and openai else None,
        "index_vs_yandex_sdk": round(index / sdk, 2) if index and (sdk := net[SDK_NAME]) else None,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
