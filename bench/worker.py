"""One function instance as a long-lived process, for the benchmarks that need the platform's
parallelism (bench/fleet.py): `index.handler` on each event it is given, one at a time.

    python -m bench.worker      reads one JSON line per event on stdin: {"event": ..., "timeout_s": s}
                                and writes one line per reply: {"reply": ...} or {"error": "..."}

Settings come from the environment, as in the cloud; the cold start (`import index`) happens once,
before the first event, as an instance's does.
"""

from __future__ import annotations

import json
import os
import sys
import time


def _peak_rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import index  # noqa: PLC0415 - the cold start, once
    from devstack.context import LocalContext  # noqa: PLC0415

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        started = time.monotonic()
        try:
            reply = index.handler(request["event"], LocalContext(timeout_s=float(request["timeout_s"])))
            answer: dict[str, object] = {"reply": reply}
        except Exception as exc:  # the platform answers a failed invocation; the trigger retries
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answer["seconds"] = round(time.monotonic() - started, 3)
        answer["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        print(json.dumps(answer, default=str), flush=True)


if __name__ == "__main__":
    # BENCH_PROFILE=dir: each instance writes its cProfile there when its stdin closes.
    if profile_dir := os.environ.get("BENCH_PROFILE"):
        import cProfile

        cProfile.run("main()", os.path.join(profile_dir, f"worker-{os.getpid()}.prof"))
    else:
        main()
