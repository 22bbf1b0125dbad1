"""Functional: a document that can never succeed is parked, whatever it raises, and nothing else
suffers for it: the rest of a batch goes on, reconcile goes on, and a key that cannot have outputs
is refused with its error record where one fits.

Parser-level poison (crafted PDFs, nested JSON, lone surrogates) is in test_poison_documents.py; here
the pipeline's one failure boundary is attacked with exceptions no parser maps, raised where the
parser runs.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from devstack.events import queue_event, timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import OutOfTime
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline import sources
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.stages.documents import ParsedDocument, parse_document
from handlers import dispatch
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json

POISON = "incoming/poison.md"
GOOD = "incoming/good.md"


@pytest.fixture
def runtime(make_runtime: RuntimeFactory, s3_bucket: str) -> Runtime:
    return make_runtime(source_bucket=s3_bucket)


def poison_parser(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    """The parser raises `error` for POISON only, as a bug or an unforeseen crafted input would."""

    def parse(data: bytes, key: str, **kwargs: Any) -> ParsedDocument:
        if key == POISON:
            raise error
        return parse_document(data, key, **kwargs)

    monkeypatch.setattr(sources, "parse_document", parse)


async def seed(storage: ObjectStorage, bucket: str) -> None:
    await storage.put(bucket, POISON, b"# Poison\n\nA text whose parsing blows up.")
    await storage.put(bucket, GOOD, b"# Good\n\nA text that embeds.")


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("maximum recursion depth exceeded"),
        AssertionError("pypdf: assert len(data) >= 4"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        MemoryError(),
        KeyError("/Root"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_an_unforeseen_exception_parks_the_document_and_the_batch_goes_on(
    runtime: Runtime,
    storage: ObjectStorage,
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: BaseException,
) -> None:
    await seed(storage, s3_bucket)
    poison_parser(monkeypatch, error)
    event = load_event("storage_object_create", bucket=s3_bucket, keys=[POISON, GOOD])

    reply = await dispatch(runtime, event, context())  # not raised: no redelivery of the batch

    outcomes = {item["key"]: item["outcome"] for item in reply["documents"]}
    assert outcomes == {POISON: "parked", GOOD: "embedded"}
    record = await read_json(storage, s3_bucket, f"embeddings/_errors/{POISON}.json")
    assert record["error"] == "unexpected_error"
    assert record["reason"].startswith(type(error).__name__)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    failed = [line for line in lines if line["msg"] == "source_failed_unexpectedly"]
    assert len(failed) == 1
    assert failed[0]["level"] == "ERROR"
    assert "Traceback" in failed[0]["exception"]  # the bug's traceback is in the logs

    # An unexpected error may not be the document's: the next sweep tries it again (it still fails
    # here, and is parked again), and pays for nothing it had.
    again = await dispatch(runtime, timer_event(None), context())
    assert again["found"]["parked_retry"] == 1
    assert again["outcomes"] == {"parked": 1}
    assert again["tokens"] == 0


async def test_reconcile_isolates_a_poison_document_and_reaches_the_rest(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(storage, s3_bucket)
    for n in range(3):
        await storage.put(s3_bucket, f"incoming/later-{n}.md", f"# Later {n}\n\nMore text.".encode())
    poison_parser(monkeypatch, RecursionError("maximum recursion depth exceeded"))

    reply = await dispatch(runtime, timer_event(None), context())

    assert reply["outcomes"] == {"parked": 1, "embedded": 4}
    assert reply["stopped_by"] is None
    assert reply["report"] is not None
    report = await read_json(storage, s3_bucket, reply["report"])
    assert report["outcomes"] == reply["outcomes"]


async def test_a_transient_failure_of_one_document_is_reported_and_the_run_goes_on(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    import httpx  # noqa: PLC0415 - only this test builds responses

    runtime = make_runtime(source_bucket=s3_bucket, embeddings_max_attempts=1)
    await storage.put(s3_bucket, "incoming/flaky.md", b"# Flaky\n\nThe API fails on this text.")
    await seed(storage, s3_bucket)
    api.fail = lambda text: httpx.Response(503, json={"error": "busy"}) if "Flaky" in text else None

    reply = await dispatch(runtime, timer_event(None), context())

    assert reply["outcomes"] == {"embedded": 2}
    assert reply["failed"] == 1
    assert reply["failures"][0]["key"] == "incoming/flaky.md"
    assert reply["failures"][0]["error"] == "embeddings_error"
    assert reply["stopped_by"] is None  # the sweep went on to its end
    # Not parked: a transient failure is retried on the next tick.
    assert await storage.head(s3_bucket, "embeddings/_errors/incoming/flaky.md.json") is None
    api.fail = lambda _text: None
    again = await dispatch(runtime, timer_event(None), context())
    assert again["outcomes"] == {"embedded": 1}


# 1,013 bytes: a valid source for Object Storage, but its output keys would pass the 1,024-byte limit.
# (Folders of 200 bytes: SeaweedFS, unlike Yandex, also caps each path segment at 255 bytes.)
LONG_KEY = "incoming/" + "/".join(["к" * 100] * 5) + ".md"


async def test_a_key_too_long_for_its_outputs_is_refused_and_parked_where_it_fits(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, LONG_KEY, b"# Long\n\nA document with a very long name.")
    refusal = OutputLayout(s3_bucket, "embeddings/").refusal(LONG_KEY)

    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=[LONG_KEY]), context()
    )

    assert reply["documents"][0]["outcome"] == "refused"
    assert "1024-byte limit" in reply["documents"][0]["reason"]
    assert await object_keys(storage, s3_bucket, "embeddings/") == [refusal]
    record = await read_json(storage, s3_bucket, refusal)
    assert (record["source"]["key"], record["error"]) == (LONG_KEY, "unsafe_key")
    assert api.requests == 0

    # Reconcile knows it, writes nothing more, and never tries to embed it.
    tick = await dispatch(runtime, timer_event(None), context())
    assert tick["found"]["refused"] == 1
    assert tick["found"]["missing"] == 0
    reconcile_own = ("embeddings/_reports/", "embeddings/_sweeps/")
    outputs = [
        key
        for key in await object_keys(storage, s3_bucket, "embeddings/")
        if not key.startswith(reconcile_own)
    ]
    assert outputs == [refusal]

    # The source deleted: its refusal record goes too.
    await storage.delete(s3_bucket, LONG_KEY)
    gone = await dispatch(
        runtime, load_event("storage_object_delete", bucket=s3_bucket, keys=[LONG_KEY]), context()
    )
    assert gone["documents"][0]["outcome"] == "refused"
    assert await storage.head(s3_bucket, refusal) is None


async def test_reconcile_records_a_refused_source_once(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, LONG_KEY, b"# Long\n\nUploaded while no trigger watched.")
    await dispatch(runtime, timer_event(None), context())
    refusal = OutputLayout(s3_bucket, "embeddings/").refusal(LONG_KEY)
    first = await storage.head(s3_bucket, refusal)
    assert first is not None
    await dispatch(runtime, timer_event(None), context())
    second = await storage.head(s3_bucket, refusal)
    assert second is not None
    assert second.last_modified == first.last_modified


async def test_a_queue_message_naming_a_dot_segment_is_parked_and_the_batch_goes_on(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, GOOD, b"# Good\n\nA text that embeds.")
    bodies = [json.dumps({"key": "incoming/./good.md"}), json.dumps({"key": GOOD})]

    reply = await dispatch(runtime, queue_event(*bodies), context())

    assert reply["parked"] == 1
    assert [item["outcome"] for item in reply["documents"]] == ["embedded"]
    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-0.json")
    assert "'.'" in parked["reason"]


async def test_a_queue_body_holding_a_lone_surrogate_is_parked_and_the_batch_goes_on(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str
) -> None:
    await storage.put(s3_bucket, GOOD, b"# Good\n\nA text that embeds.")
    event = queue_event("placeholder", json.dumps({"key": GOOD}))
    event["messages"][0]["details"]["message"]["body"] = '{"id": "x", "text": "broken \ud800 text"'

    reply = await dispatch(runtime, event, context())

    assert reply["parked"] == 1
    assert [item["outcome"] for item in reply["documents"]] == ["embedded"]
    parked = await read_json(storage, s3_bucket, "embeddings/_errors/_queue/message-0.json")
    assert "\\ud800" in parked["body"]  # kept, escaped, for an operator to read


async def test_a_document_whose_parsing_outlasts_a_whole_invocation_is_parked(
    runtime: Runtime, storage: ObjectStorage, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing cannot resume part-way: out of time with most of the invocation still ahead when it
    began, the next invocation would fare no better, so the document is parked, not handed over."""
    await seed(storage, s3_bucket)
    poison_parser(monkeypatch, OutOfTime("the invocation's time budget ran out while parsing"))

    reply = await dispatch(
        runtime, load_event("storage_object_create", bucket=s3_bucket, keys=[POISON]), context(timeout_s=60)
    )

    assert reply["documents"][0]["outcome"] == "parked"
    record = await read_json(storage, s3_bucket, f"embeddings/_errors/{POISON}.json")
    assert record["error"] == "document_too_large"
    assert "did not finish within the invocation's" in record["reason"]


def test_only_a_run_with_most_of_its_invocation_ahead_counts_as_a_whole_one() -> None:
    assert Deadline.after(60).mostly_left()
    assert not Deadline(expires_at=time.monotonic() + 10, budget_s=60).mostly_left()
