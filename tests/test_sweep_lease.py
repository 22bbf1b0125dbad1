"""The sweep's lease: one reconcile at a time per bucket and prefix (pipeline/reconcile/state.py).

Unit: what a tick or a step message does with the state it reads. Functional: two processes
running the timer's event at the same moment against SeaweedFS and the loopback emulator, which
counts each text it is asked for.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from devstack.s3server import S3Server
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.pipeline.reconcile.state import Holder, SweepState, on_step, on_tick
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.support import ROOT

NOW = 1_000_000.0


def state(**fields: object) -> SweepState:
    values: dict[str, object] = {
        "sweep": "s1",
        "scope": "0123456789abcdef",
        "bucket": "docs",
        "prefix": "incoming/",
        "mode": "queue",
        "started_at": "2026-12-05T00:00:00Z",
        "max_tokens": 100,
        "step": 3,
    }
    return SweepState.model_validate(values | fields)


def held(until: float) -> Holder:
    return Holder(by="other", until=until)


@pytest.mark.parametrize(
    ("found", "decision"),
    [
        (None, "start"),
        (state(holder=held(NOW + 10)), "busy"),
        (state(holder=held(NOW - 1)), "take_over"),  # its holder is gone
        (state(expect_by=NOW + 10), "busy"),  # handed on: its step is on its way
        (state(expect_by=NOW - 1), "take_over"),  # the step handed on never came
        (state(), "resume"),  # paused: the tick carries on where it stopped
    ],
)
def test_what_a_tick_does(found: SweepState | None, decision: str) -> None:
    assert on_tick(found, NOW) == decision


@pytest.mark.parametrize(
    ("found", "sweep", "step", "decision"),
    [
        (None, "s1", 3, "drop"),
        (state(expect_by=NOW + 10), "s0", 3, "drop"),  # another sweep's
        (state(expect_by=NOW + 10), "s1", 4, "drop"),  # made obsolete by a takeover
        (state(expect_by=NOW + 10), "s1", 1, "drop"),  # long done
        (state(expect_by=NOW + 10), "s1", 3, "claim"),
        (state(), "s1", 3, "drop"),  # paused: a tick resumes it, not a stray message
        (state(holder=held(NOW + 10)), "s1", 3, "retry_later"),  # its twin, or its crashed run, holds it
        (state(holder=held(NOW - 1)), "s1", 3, "take_over"),
        (state(expect_by=NOW + 10), "s1", 2, "resend_next"),  # the hand-over may have crashed before its send
        (state(holder=held(NOW + 10)), "s1", 2, "drop"),  # the next step runs
    ],
)
def test_what_a_step_message_does(found: SweepState | None, sweep: str, step: int, decision: str) -> None:
    assert on_step(found, sweep, step, NOW) == decision


TICK = """
import json, os, sys, time
import index
from devstack.context import LocalContext
from devstack.events import timer_event
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
print(json.dumps(index.handler(timer_event(None), LocalContext(timeout_s=120))))
"""


async def test_two_reconciles_started_together_pay_for_each_text_once(
    s3_server: S3Server, storage: ObjectStorage, s3_bucket: str
) -> None:
    for number in range(12):
        await storage.put(
            s3_bucket, f"incoming/doc-{number}.md", f"# Doc {number}\n\nText {number}.".encode()
        )
    with YandexEmulator(EmulatorConfig(rps=1000, latency_s=0.05)) as emulator:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "YC_FOLDER_ID": "b1gtest",
            "YC_API_KEY": "AQVN-test-key-0123456789abcdef",
            "EMBEDDINGS_URL": emulator.url,
            "EMBEDDINGS_RPS": "1000",
            "S3_ENDPOINT": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "SOURCE_BUCKET": s3_bucket,
            "LOG_LEVEL": "ERROR",
            "START_AT": str(time.time() + 3.0),  # both import the function first, then start together
        }
        runs = [
            subprocess.Popen(
                [sys.executable, "-c", TICK], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=120)[0] for run in runs]
        texts = dict(emulator.stats.texts)
    replies = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert all(run.returncode == 0 for run in runs)  # the loser exits cleanly: a timer would not retry
    finished = [reply for reply in replies if reply.get("report")]
    busy = [reply for reply in replies if reply.get("stopped_by") == "a sweep is in progress"]
    assert (len(finished), len(busy)) == (1, 1), replies
    assert finished[0]["outcomes"] == {"embedded": 12}
    assert len(texts) == 12
    assert set(texts.values()) == {1}  # every text paid once
