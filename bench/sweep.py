"""Reconcile at bucket scale, as deployed: the timer's tick, pages and references through Message
Queue, several function instances, the folder's quota shared between them.

Every instance is a process running `index.handler` (bench/worker.py, scheduled by bench/fleet.py);
the queue is devstack's YMQ server, and its trigger delivers batches of up to 10 messages to the
instances as the platform does (delete on success, redeliver after the visibility timeout on
failure). SeaweedFS holds the bucket; the emulator is the folder-wide quota and counts every text.

    python -m bench.sweep                      every scenario at the issue's sizes (about 25 minutes)
    python -m bench.sweep --scale 0.1          the same at a tenth of the sizes

| scenario | what                                                 | target                                  |
|----------|------------------------------------------------------|-----------------------------------------|
| steady   | a sweep over 100,000 current documents               | ends; each invocation <= 128 MB, 60 s   |
| backfill | 20,000 one-chunk documents, 8 instances, 100 rps     | >= 80% of quota, <= 5% 429s, texts once |
| slow     | 2,000 documents at 10 rps                            | >= 90% of the quota                     |
| dry_run  | estimate over 100,000 (1,000 embedded calibrate it)  | within 15% of the true total            |
| crash    | SIGKILL of the instance walking a page, steps twice  | the sweep ends, each text paid once     |
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.common import bucket_storage, s3_server
from bench.corpus import KINDS, document_text, key_of, put_sources
from bench.fleet import ROOT, Fleet
from devstack.context import LocalContext
from devstack.events import timer_event
from devstack.queue_trigger import QueueTrigger
from devstack.s3server import S3Server
from devstack.ymq_server import QueueServer, start_queue_server
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.prepare import chunking_of
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents import chunk_document, parse_document
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

FUNCTION_TIMEOUT_S = 60.0  # the bound on one invocation
VISIBILITY_TIMEOUT_S = 75  # longer than the function's timeout, as terraform/ sets it
LATENCY_S = 0.05


@dataclass
class Stack:
    s3: S3Server
    emulator: YandexEmulator
    queues: QueueServer


def environment(stack: Stack, bucket: str, queue_url: str | None, *, rps: float) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "YC_FOLDER_ID": "b1gbench",
        "METRICS": "false",  # the figures measure the pipeline, not a Monitoring write
        "YC_API_KEY": "AQVN-bench",
        "EMBEDDINGS_URL": stack.emulator.url,
        "EMBEDDINGS_RPS": str(rps),
        "S3_ENDPOINT": stack.s3.endpoint,
        "AWS_ACCESS_KEY_ID": stack.s3.access_key,
        "AWS_SECRET_ACCESS_KEY": stack.s3.secret_key,
        "SOURCE_BUCKET": bucket,
        "LOG_LEVEL": "ERROR",
        "YMQ_ENDPOINT": stack.queues.endpoint,
    }
    if queue_url is not None:
        env["QUEUE_URL"] = queue_url
    if profile := os.environ.get("BENCH_PROFILE"):  # bench/worker.py: each instance's cProfile
        env["BENCH_PROFILE"] = profile
    return env


@contextmanager
def deployment(
    stack: Stack,
    bucket: str,
    *,
    instances: int,
    rps: float,
    submit: Callable[[Fleet], Callable[[dict[str, Any], Any], Future[dict[str, Any]]]] | None = None,
) -> Iterator[tuple[Fleet, QueueTrigger]]:
    """A queue with its dead-letter queue, `instances` function processes, and the trigger between."""
    name = f"{bucket}-work"
    dead = stack.queues.create_queue(f"{name}-dlq")
    queue_url = stack.queues.create_queue(
        name, visibility_timeout_s=VISIBILITY_TIMEOUT_S, dead_letter_queue=dead, max_receive_count=3
    )
    stack.emulator.set_rps(rps)
    fleet = Fleet(instances, environment(stack, bucket, queue_url, rps=rps), timeout_s=FUNCTION_TIMEOUT_S)
    trigger = QueueTrigger(
        stack.queues.endpoint,
        queue_url,
        (submit or (lambda f: f.submit))(fleet),
        access_key=stack.s3.access_key,
        secret_key=stack.s3.secret_key,
        concurrency=instances,
    )
    trigger.start()
    try:
        yield fleet, trigger
    finally:
        trigger.stop()
        fleet.close()


async def wait_for_report(
    storage: ObjectStorage, bucket: str, *, timeout_s: float, seen: set[str] | None = None
) -> dict[str, Any]:
    """The sweep's report, once it is in `_reports/` (a report not in `seen`, which it joins)."""
    seen = set() if seen is None else seen
    layout = OutputLayout(bucket, "embeddings/")
    prefix = layout.report("").rsplit("/", 1)[0] + "/"
    stop = time.monotonic() + timeout_s
    while time.monotonic() < stop:
        async for info in storage.list_objects(bucket, prefix):
            if info.key.endswith(".json") and not info.key.endswith("cursor.json") and info.key not in seen:
                data = await storage.get(bucket, info.key, max_bytes=10**7)
                if data is None:
                    continue
                seen.add(info.key)
                report: dict[str, Any] = json.loads(data)
                return report
        await _raise_if_paused(storage, bucket, layout)
        await asyncio.sleep(1.0)
    raise TimeoutError(f"no report in {timeout_s:.0f} s")


async def _raise_if_paused(storage: ObjectStorage, bucket: str, layout: OutputLayout) -> None:
    """A sweep that paused (its budget, say) waits for the next tick: the bench says so at once
    rather than waiting out its timeout."""
    prefix = layout.sweeps
    async for info in storage.list_objects(bucket, prefix, page_size=10):
        if "/" in info.key[len(prefix) :]:
            return  # "{scope}.json" sorts before "{scope}/...": no state object, or not yet
        data = await storage.get(bucket, info.key, max_bytes=10**7)
        state = json.loads(data or b"{}")
        if state.get("stopped_by") and state.get("holder") is None and state.get("expect_by") is None:
            raise RuntimeError(f"the sweep paused ({state['stopped_by']}) and waits for the next tick")
        return


def invocation_figures(fleet: Fleet) -> dict[str, Any]:
    with fleet.stats.lock:
        done = list(fleet.stats.invocations)
    by_kind: dict[str, list[float]] = {}
    for invocation in done:
        by_kind.setdefault(invocation.kind, []).append(invocation.seconds)
    return {
        "invocations": {kind: len(seconds) for kind, seconds in sorted(by_kind.items())},
        "slowest_s": {kind: round(max(seconds), 1) for kind, seconds in sorted(by_kind.items())},
        "peak_rss_mb": round(max((i.peak_rss_mb for i in done), default=0.0), 1),
        "failed_invocations": sum(i.failed for i in done),
        "restarts": fleet.stats.restarts,
    }


def quota_figures(emulator: YandexEmulator, rps: float, seconds: float) -> dict[str, Any]:
    stats = emulator.stats
    with stats.lock:
        ok, throttled = stats.ok, stats.throttled
        counts = list(stats.texts.values())
        first, last = min(stats.admitted_at, default=0.0), max(stats.admitted_at, default=0.0)
    return {
        "embedded": ok,
        "throttled": throttled,
        "throttled_share": round(throttled / max(1, ok + throttled), 4),
        "quota_use_over_run": round(ok / (rps * seconds), 3),
        "quota_use_while_embedding": round(ok / (rps * max(1e-9, last - first)), 3),
        "texts": len(counts),
        "texts_paid_twice": sum(1 for count in counts if count > 1),
    }


def reset(emulator: YandexEmulator) -> None:
    stats = emulator.stats
    with stats.lock:
        stats.requests = stats.ok = stats.throttled = stats.rejected = stats.faults = 0
        stats.texts.clear()
        stats.admitted_at.clear()
        stats.throttled_at.clear()


# A backfill of 20,000 documents costs ~6.6M tokens, past RECONCILE_MAX_TOKENS' default of 2M (the
# sweep would pause there until the next tick, by design): the bench's tick raises the run's budget,
# as a user starting a backfill would (README: "Reconcile").
BACKFILL = {"action": "reconcile", "max_tokens": 100_000_000}


def tick(fleet: Fleet, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return fleet.submit(timer_event(payload or {"action": "reconcile"}), LocalContext()).result()


async def steady(stack: Stack, documents: int) -> dict[str, Any]:
    """Sweeps over a bucket whose every document is current: a tick's cost when there is nothing to
    do. The first reads every manifest (the corpus was written without the sweeps' summaries of what
    they verified: reconcile/verified.py); the second, the steady one, reads none."""
    from bench.corpus import put_current  # noqa: PLC0415

    async with bucket_storage(stack.s3) as (storage, bucket):
        settings = load_settings(
            yc_folder_id="b1gbench", yc_api_key="AQVN-bench", embeddings_url=stack.emulator.url
        )
        started = time.perf_counter()
        await put_current(storage, bucket, settings, documents)
        corpus_s = time.perf_counter() - started
        reset(stack.emulator)
        ticks, seen = [], set[str]()
        with deployment(stack, bucket, instances=4, rps=10) as (fleet, _trigger):
            for _ in range(2):
                started = time.perf_counter()
                await asyncio.to_thread(tick, fleet)
                report = await wait_for_report(storage, bucket, timeout_s=3600, seen=seen)
                ticks.append(_tick_figures(report, documents, time.perf_counter() - started))
            figures = invocation_figures(fleet)
    return {
        "documents": documents,
        "corpus_written_s": round(corpus_s, 1),
        "first_tick": ticks[0],
        "steady_tick": ticks[1],
        "api_requests": stack.emulator.stats.ok,
        **figures,
    }


def _tick_figures(report: dict[str, Any], documents: int, seconds: float) -> dict[str, Any]:
    requests: dict[str, int] = report.get("storage_requests", {})
    per_1000 = {op: round(count / documents * 1000, 2) for op, count in sorted(requests.items())}
    return {
        "sweep_s": round(seconds, 1),
        "pages": report.get("pages"),
        "steps": report.get("steps"),
        "found": report.get("found"),
        "storage_requests": requests,
        "requests_per_1000_documents": per_1000,
        "all_per_1000_documents": round(sum(requests.values()) / documents * 1000, 2),
    }


async def backfill(stack: Stack, documents: int, *, rps: float, instances: int = 8) -> dict[str, Any]:
    """A bucket of unembedded one-chunk documents, the first tick, and the queue's instances."""
    async with bucket_storage(stack.s3) as (storage, bucket):
        await put_sources(storage, bucket, documents)
        reset(stack.emulator)
        with deployment(stack, bucket, instances=instances, rps=rps) as (fleet, trigger):
            started = time.perf_counter()
            await asyncio.to_thread(tick, fleet, BACKFILL)
            report = await wait_for_report(storage, bucket, timeout_s=3600)
            seconds = time.perf_counter() - started
            figures = invocation_figures(fleet)
            batches = trigger.stats()
    return {
        "documents": documents,
        "rps": rps,
        "instances": instances,
        "seconds": round(seconds, 1),
        **quota_figures(stack.emulator, rps, seconds),
        "report": {k: report.get(k) for k in ("pages", "steps", "queued", "accounted", "outcomes", "failed")},
        "trigger": batches,
        **figures,
    }


async def crash(stack: Stack, documents: int, *, rps: float = 100, instances: int = 8) -> dict[str, Any]:
    """SIGKILL of the instance walking a page, and every page delivered twice: the sweep still ends,
    and no text is paid twice."""
    duplicated = 0
    lock = threading.Lock()

    def twice(fleet: Fleet) -> Callable[[dict[str, Any], Any], Future[dict[str, Any]]]:
        def submit(event: dict[str, Any], context: Any) -> Future[dict[str, Any]]:
            nonlocal duplicated
            reply = fleet.submit(event, context)
            if '\\"reconcile\\"' in json.dumps(event):  # a step: deliver it again, as a queue may
                with lock:
                    duplicated += 1
                fleet.submit(event, context)
            return reply

        return submit

    async with bucket_storage(stack.s3) as (storage, bucket):
        await put_sources(storage, bucket, documents)
        reset(stack.emulator)
        with deployment(stack, bucket, instances=instances, rps=rps, submit=twice) as (fleet, _trigger):
            started = time.perf_counter()
            await asyncio.to_thread(tick, fleet, BACKFILL)
            killed = False
            for _ in range(600):  # the first step that runs after the tick handed on
                if fleet.kill_running("step"):
                    killed = True
                    break
                await asyncio.sleep(0.05)
            report = await wait_for_report(storage, bucket, timeout_s=3600)
            seconds = time.perf_counter() - started
            figures = invocation_figures(fleet)
    quota = quota_figures(stack.emulator, rps, seconds)
    return {
        "documents": documents,
        "killed_a_step": killed,
        "steps_delivered_twice": duplicated,
        "seconds": round(seconds, 1),
        "embedded": quota["embedded"],
        "texts": quota["texts"],
        "texts_paid_twice": quota["texts_paid_twice"],
        "report": {k: report.get(k) for k in ("pages", "steps", "runs", "queued", "accounted", "outcomes")},
        "restarts": figures["restarts"],
    }


def true_tokens(settings_chunking: Any, numbers: range) -> int:
    """What embedding these corpus documents costs, counted as the emulator counts it, by parsing
    and chunking each with the pipeline's own code (no object is read: the corpus is seeded)."""
    total = 0
    for number in numbers:
        kind = KINDS[number % len(KINDS)]
        document = parse_document(document_text(number, kind), key_of(number, kind))
        for chunk in chunk_document(document, settings_chunking):
            total += max(1, len(chunk.text) // 4)  # testkit.yandex_emulator.CHARS_PER_TOKEN
    return total


async def dry_run(stack: Stack, documents: int, *, calibrated: int = 1000) -> dict[str, Any]:
    """A dry run over `documents`, of which the first `calibrated` were embedded for real (their
    manifests calibrate the estimate); compared with the true cost of the rest."""
    async with bucket_storage(stack.s3) as (storage, bucket):
        await put_sources(storage, bucket, documents)
        reset(stack.emulator)
        with deployment(stack, bucket, instances=1, rps=1000) as (fleet, _trigger):
            # key_of puts a hundred documents in a folder: these prefixes hold the first 1,000 or 100
            folder = "incoming/set-000" if calibrated == 1000 else "incoming/set-0000/"
            tick(fleet, {"action": "reconcile", "prefix": folder})
            calibration = await wait_for_report(storage, bucket, timeout_s=600)
            paid_for_calibration = stack.emulator.stats.ok
        env = environment(stack, bucket, None, rps=10)
        fleet = Fleet(1, env, timeout_s=600.0)
        try:
            replies, started, after = [], time.perf_counter(), None
            while True:
                resume: dict[str, Any] = {"after": after} if after else {}
                reply = tick(fleet, {"action": "reconcile", "dry_run": True, **resume})
                replies.append(reply)
                if not reply.get("stopped_by"):
                    break
                after = reply["resume_after"]
            seconds = time.perf_counter() - started
            figures = invocation_figures(fleet)
        finally:
            fleet.close()
    settings = load_settings(**{k.lower(): v for k, v in env.items() if k in {"YC_FOLDER_ID", "YC_API_KEY"}})
    chunking = chunking_of(settings)
    truth = true_tokens(chunking, range(calibrated, documents))
    # The counting above is checked against what the API billed for the documents embedded for real.
    truth_check = {"billed": calibration.get("tokens"), "counted": true_tokens(chunking, range(calibrated))}
    estimate = sum(int(reply.get("tokens", 0)) for reply in replies)
    return {
        "documents": documents,
        "embedded_to_calibrate": paid_for_calibration,
        "true_tokens_check": truth_check,
        "invocations": len(replies),
        "seconds": round(seconds, 1),
        "estimated_tokens": estimate,
        "true_tokens": truth,
        "error": round(estimate / truth - 1, 4),
        "would_embed": sum(int(r.get("outcomes", {}).get("would_embed", 0)) for r in replies),
        "storage_requests": replies[-1].get("storage_requests"),
        "estimate": replies[-1].get("estimate"),
        "peak_rss_mb": figures["peak_rss_mb"],
    }


async def main(scale: float = 1.0, only: set[str] | None = None) -> dict[str, Any]:
    def size(count: int) -> int:
        return max(100, int(count * scale))

    figures: dict[str, Any] = {}
    with s3_server() as s3, YandexEmulator(EmulatorConfig(latency_s=LATENCY_S)) as emulator:
        queues = start_queue_server(access_key=s3.access_key, secret_key=s3.secret_key)
        stack = Stack(s3, emulator, queues)
        try:
            scenarios: dict[str, Callable[[], Any]] = {
                "backfill": lambda: backfill(stack, size(20_000), rps=100),
                "slow": lambda: backfill(stack, size(2_000), rps=10),
                "crash": lambda: crash(stack, size(3_000)),
                "dry_run": lambda: dry_run(stack, size(100_000), calibrated=min(1000, size(1000))),
                "steady": lambda: steady(stack, size(100_000)),
            }
            for name, scenario in scenarios.items():
                if only and name not in only:
                    continue
                started = time.perf_counter()
                figures[name] = await scenario()
                figures[name]["bench_s"] = round(time.perf_counter() - started, 1)
                print(json.dumps({name: figures[name]}, ensure_ascii=False), flush=True)
        finally:
            queues.stop()
    return figures


if __name__ == "__main__":
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    from embedding_pipeline.logs import configure_logging

    configure_logging("ERROR")
    print(json.dumps(asyncio.run(main(args.scale, set(args.only or ()))), indent=2, ensure_ascii=False))
