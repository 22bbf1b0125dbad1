"""One function instance as a process, for bench/shared_quota.py: `index.handler` on its own work.

    python -m bench.instance ingest <key>     one ObjectCreate event for s3://$SOURCE_BUCKET/<key>
                                              (or $EVENT_BUCKET, with no SOURCE_BUCKET set)
    python -m bench.instance ask <count>      that many HTTP requests of one query, one after another

Settings come from the environment, as in the cloud. The process imports the function (its cold
start) first, then waits for START_AT (time.time()), so that every instance starts together. It
prints one JSON line: when it started and finished and, for `ask`, each request's latency.
"""

from __future__ import annotations

import json
import os
import sys
import time

from devstack.context import LocalContext
from devstack.events import http_event, storage_event


def main() -> None:
    import index  # noqa: PLC0415 - the cold start happens before the start line, as in the cloud

    mode, argument = sys.argv[1], sys.argv[2]
    time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
    started = time.time()
    report: dict[str, object] = {"started": started}
    if mode == "ingest":
        reply = index.handler(
            storage_event(
                "ObjectCreate", os.environ.get("EVENT_BUCKET") or os.environ["SOURCE_BUCKET"], argument
            ),
            LocalContext(timeout_s=3600),
        )
        report["reply"] = reply
    else:
        latencies = []
        failures: list[str] = []
        headers = {"Content-Type": "application/json", "X-Api-Key": os.environ["HTTP_API_KEYS"]}
        for number in range(int(argument)):
            time.sleep(float(os.environ.get("ASK_EVERY_S", "1.0")))
            body = json.dumps({"input": [f"Как оформить отпуск? {number}"], "model": "query"})
            asked = time.time()
            reply = index.handler(
                http_event("POST", "/v1/embeddings", headers, body, shape="1.0"), LocalContext(timeout_s=60)
            )
            latencies.append(time.time() - asked)
            if reply["statusCode"] != 200:
                failures.append(reply["body"])
        report["latencies"] = latencies
        report["failures"] = failures
    report["finished"] = time.time()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
