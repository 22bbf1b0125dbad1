"""Functional: scans and images through the pipeline, read by the Vision OCR emulator on loopback.

SeaweedFS holds sources and outputs; the emulator (testkit/ocr_emulator.py) answers Vision OCR's
REST API from the scans' ground truth (testkit/scans.py), with the faults a test asks of it. Every
path: an image at once, a scanned PDF through an operation across invocations, a garbled text layer,
OCR off, OCR refused, the page cap, and nothing recognised twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from devstack.events import timer_event
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import OcrAuthError, OcrError, OcrPending
from embedding_pipeline.runtime import Runtime, Transports
from handlers import dispatch
from testkit.ocr_emulator import OcrConfig, OcrEmulator
from testkit.scans import garbled_pdf, mixed_pdf, scan_jpeg, scan_png, scanned_pdf
from tests.fakes import FakeEmbeddingsAPI, FakeMessageQueue
from tests.support import RuntimeFactory, context, load_event, object_keys, read_json

QUEUE_URL = "https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs"
PAGES = [f"Страница {n}: акт сверки № {4400 + n}, поставщик ООО Ромашка." for n in range(1, 6)]


@pytest.fixture
def vision() -> Iterator[OcrEmulator]:
    with OcrEmulator(OcrConfig(rps=100)) as emulator:
        yield emulator


def ocr_runtime(make_runtime: RuntimeFactory, emulator: OcrEmulator, **overrides: Any) -> Runtime:
    return make_runtime(ocr_url=emulator.url, ocr_operations_url=emulator.operations_url, **overrides)


async def create(runtime: Runtime, bucket: str, key: str, **context_overrides: Any) -> dict[str, Any]:
    event = load_event("storage_object_create", bucket=bucket, keys=[key])
    reply: dict[str, Any] = await dispatch(runtime, event, context(**context_overrides))
    return reply


async def records_of(storage: ObjectStorage, bucket: str, key: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = await read_json(storage, bucket, f"embeddings/{key}.jsonl")
    return records


async def test_an_image_is_read_at_once_and_embedded(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/scans/договор.png"
    await storage.put(s3_bucket, key, scan_png("Договор поставки № 17 от 3 марта"))
    reply = await create(ocr_runtime(make_runtime, vision), s3_bucket, key)

    assert reply["documents"][0]["outcome"] == "embedded"
    (record,) = await records_of(storage, s3_bucket, key)
    assert "Договор поставки № 17" in record["text"]
    assert (record["metadata"]["page"], record["metadata"]["ocr"]) == (1, True)
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    assert (manifest["format"], manifest["usage"]["ocr_pages"], manifest["usage"]["ocr_requests"]) == (
        "image",
        1,
        1,
    )
    (request,) = vision.stats.select(["recognizeText"])
    # The customer's scans are asked not to be logged; the folder and the context's token are sent.
    assert request.data_logging == "false"
    assert request.folder_id == "b1gtest"
    assert request.authorization == "Api-Key AQVNtest-api-key-for-fake-server"


async def test_a_jpeg_is_read_too(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/photo.jpg"
    await storage.put(s3_bucket, key, scan_jpeg("Invoice 4417 total 12 500 RUB"))
    await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    (record,) = await records_of(storage, s3_bucket, key)
    assert "Invoice 4417" in record["text"]


async def test_a_scanned_pdf_is_read_by_one_operation_across_a_hand_over(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    api: FakeEmbeddingsAPI,
) -> None:
    key = "incoming/scans/акты.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES))
    queue = FakeMessageQueue()
    with OcrEmulator(OcrConfig(rps=100, ready_after_s=2.5)) as vision:
        runtime = ocr_runtime(
            make_runtime,
            vision,
            transports=Transports(embeddings=api.transport, queue=queue.transport),
            source_bucket=s3_bucket,
            queue_url=QUEUE_URL,
            deadline_margin_s=0,
        )
        # GIVEN an invocation that ends before Vision has read the pages
        reply = await create(runtime, s3_bucket, key, timeout_s=1.5)

        # THEN it hands the document on, delayed, and keeps the operation
        assert reply["documents"][0]["outcome"] == "continued"
        assert "Vision OCR still reads" in reply["documents"][0]["reason"]
        assert int(queue.sent[0]["DelaySeconds"]) >= 1
        state = await read_json(storage, s3_bucket, f"embeddings/{key}.ocr.json")
        assert [operation["pages"] for operation in state["pending"]] == [[1, 2, 3, 4, 5]]
        assert api.requests == 0

        # WHEN the continuation comes (twice: a redelivery), after Vision has finished
        for body in queue.take() * 2:
            reply = await dispatch(runtime, queue_event(body), context())
        started = vision.stats.select(["recognizeTextAsync"], status=200)

    # THEN the pages were sent once, read once, and every page's text is in order with its number
    assert len(started) == 1
    assert vision.stats.pages_recognised == 5
    assert reply["documents"][0]["outcome"] == "unchanged"
    records = await records_of(storage, s3_bucket, key)
    pages = [record["metadata"]["page"] for record in records]
    assert pages == sorted(pages)
    assert set(pages) == {1, 2, 3, 4, 5}
    text = " ".join(record["text"] for record in records)
    assert all(f"№ {4400 + n}" in text for n in range(1, 6))
    manifest = await read_json(storage, s3_bucket, f"embeddings/{key}.manifest.json")
    assert manifest["usage"]["ocr_pages"] == 5
    assert not (await read_json(storage, s3_bucket, f"embeddings/{key}.ocr.json"))["pending"]


async def test_without_a_queue_the_trigger_retry_collects_the_operation(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/scan.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES[:3]))
    with OcrEmulator(OcrConfig(rps=100, ready_after_s=2.0)) as vision:
        runtime = ocr_runtime(make_runtime, vision, deadline_margin_s=0)
        with pytest.raises(OcrPending):
            await create(runtime, s3_bucket, key, timeout_s=1.0)
        reply = await create(runtime, s3_bucket, key)
        assert len(vision.stats.select(["recognizeTextAsync"], status=200)) == 1
    assert reply["documents"][0]["outcome"] == "embedded"


async def test_a_garbled_text_layer_is_read_by_ocr_and_good_pages_are_not_sent(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/mixed.pdf"
    pdf = mixed_pdf(
        [
            ("Page one has a real text layer about invoices.", "text"),
            ("Вторая страница: шрифт без ToUnicode.", "garbled"),
            ("Третья страница отсканирована.", "scan"),
        ]
    )
    await storage.put(s3_bucket, key, pdf)
    await create(ocr_runtime(make_runtime, vision), s3_bucket, key)

    records = await records_of(storage, s3_bucket, key)
    by_page = {record["metadata"]["page"]: record for record in records}
    assert "real text layer" in by_page[1]["text"]
    assert "ocr" not in by_page[1]["metadata"]
    assert "шрифт без ToUnicode" in by_page[2]["text"]
    assert "отсканирована" in by_page[3]["text"]
    # Pages 2 and 3 went to Vision in one PDF of two pages; page 1 was never sent.
    assert vision.stats.pages_recognised == 2


async def test_ocr_off_parks_a_scan_and_skips_the_scanned_pages_of_a_mixed_pdf(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    runtime = ocr_runtime(make_runtime, vision, ocr_enabled=False)
    await storage.put(s3_bucket, "incoming/scan.pdf", scanned_pdf(PAGES[:2]))
    await storage.put(s3_bucket, "incoming/photo.png", scan_png("Фото"))
    await storage.put(
        s3_bucket, "incoming/mixed.pdf", mixed_pdf([("A text page.", "text"), ("A scanned page.", "scan")])
    )
    for key in ("incoming/scan.pdf", "incoming/photo.png", "incoming/mixed.pdf"):
        await create(runtime, s3_bucket, key)

    parked = await read_json(storage, s3_bucket, "embeddings/_errors/incoming/scan.pdf.json")
    assert parked["error"] == "ocr_off"
    assert "OCR_ENABLED=false" in parked["reason"]
    assert (await read_json(storage, s3_bucket, "embeddings/_errors/incoming/photo.png.json"))[
        "error"
    ] == "ocr_off"
    (record,) = await records_of(storage, s3_bucket, "incoming/mixed.pdf")
    assert record["text"] == "A text page."
    assert vision.stats.select() == []


async def test_ocr_refused_parks_the_document_with_visions_reason(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/bad.png"
    await storage.put(s3_bucket, key, scan_png("x"))
    with OcrEmulator(OcrConfig(refuse_content="unsupported image")) as vision:
        reply = await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    assert reply["documents"][0]["outcome"] == "parked"
    parked = await read_json(storage, s3_bucket, f"embeddings/_errors/{key}.json")
    assert parked["error"] == "ocr_refused"
    assert "unsupported image" in parked["reason"]


async def test_more_pages_than_the_cap_park_before_anything_is_paid(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/book.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES))
    await create(ocr_runtime(make_runtime, vision, ocr_max_pages=4), s3_bucket, key)
    parked = await read_json(storage, s3_bucket, f"embeddings/_errors/{key}.json")
    assert parked["error"] == "document_too_large"
    assert "5 pages need OCR: over OCR_MAX_PAGES=4" in parked["reason"]
    assert vision.stats.select() == []


async def test_a_missing_role_stops_the_run_and_touches_nothing(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/scan.png"
    await storage.put(s3_bucket, key, scan_png("x"))
    with (
        OcrEmulator(OcrConfig(deny_access=True)) as vision,
        pytest.raises(OcrAuthError, match=r"ai\.vision\.user"),
    ):
        await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    assert [k for k in await object_keys(storage, s3_bucket, "embeddings/") if "_claims/" not in k] == []


async def test_nothing_is_recognised_twice_across_redeliveries_and_a_new_chunking(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/scan.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES[:3]))
    await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    await create(ocr_runtime(make_runtime, vision), s3_bucket, key)  # redelivered: unchanged
    smaller = ocr_runtime(make_runtime, vision, chunk_max_tokens=16)
    reply = await create(smaller, s3_bucket, key)  # new settings: re-chunked from the kept pages
    assert reply["documents"][0]["outcome"] == "embedded"
    assert vision.stats.pages_recognised == 3
    assert len(await records_of(storage, s3_bucket, key)) > 3


async def test_throttled_recognitions_are_paced_and_sent_again(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    with OcrEmulator(OcrConfig(rps=2)) as vision:
        runtime = ocr_runtime(make_runtime, vision, ocr_rps=50)  # configured above the real quota
        for n in range(4):
            await storage.put(s3_bucket, f"incoming/s{n}.png", scan_png(f"скан {n}"))
        for n in range(4):
            await create(runtime, s3_bucket, f"incoming/s{n}.png")
        assert vision.stats.pages_recognised == 4
    for n in range(4):
        (record,) = await records_of(storage, s3_bucket, f"incoming/s{n}.png")
        assert f"скан {n}" in record["text"]


async def test_a_failed_operation_is_retried_by_the_next_delivery(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/scan.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES[:2]))
    with OcrEmulator(OcrConfig(fail_operations=1.0, failure_code=13)) as vision:
        with pytest.raises(OcrError, match="failed"):
            await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
        state = await read_json(storage, s3_bucket, f"embeddings/{key}.ocr.json")
        assert state["pending"] == []  # the failed operation is forgotten, its pages sent again
        vision.config.fail_operations = 0.0
        reply = await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    assert reply["documents"][0]["outcome"] == "embedded"


async def test_an_operation_that_fails_for_its_content_parks_the_document(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str
) -> None:
    key = "incoming/scan.pdf"
    await storage.put(s3_bucket, key, scanned_pdf(PAGES[:2]))
    with OcrEmulator(OcrConfig(fail_operations=1.0)) as vision:
        reply = await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    assert reply["documents"][0]["outcome"] == "parked"
    parked = await read_json(storage, s3_bucket, f"embeddings/_errors/{key}.json")
    assert parked["error"] == "ocr_refused"
    assert "could not read pages 1-2" in parked["reason"]


async def test_a_deleted_source_takes_its_ocr_pages_with_it(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/scan.png"
    await storage.put(s3_bucket, key, scan_png("x"))
    runtime = ocr_runtime(make_runtime, vision)
    await create(runtime, s3_bucket, key)
    assert f"embeddings/{key}.ocr.json" in await object_keys(storage, s3_bucket, "embeddings/")
    await storage.delete(s3_bucket, key)
    event = load_event("storage_object_delete", bucket=s3_bucket, keys=[key])
    await dispatch(runtime, event, context())
    assert await object_keys(storage, s3_bucket, "embeddings/incoming/") == []


async def test_garbled_pages_need_the_fix_not_the_garbage(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    key = "incoming/garbled.pdf"
    await storage.put(s3_bucket, key, garbled_pdf(["Счёт № 88 на оплату услуг связи."]))
    await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    (record,) = await records_of(storage, s3_bucket, key)
    assert "Счёт № 88" in record["text"]


def queue_event(body: str) -> dict[str, Any]:
    event = load_event("queue_batch")
    message = json.loads(json.dumps(event["messages"][0]))
    message["details"]["message"]["body"] = body
    event["messages"] = [message]
    return event


async def test_a_dry_run_counts_the_pages_it_would_send_and_sends_none(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    await storage.put(s3_bucket, "incoming/a.pdf", scanned_pdf(PAGES[:3]))
    await storage.put(s3_bucket, "incoming/b.pdf", mixed_pdf([("Text.", "text"), ("Scan.", "scan")]))
    await storage.put(s3_bucket, "incoming/c.png", scan_png("Фото"))
    runtime = ocr_runtime(make_runtime, vision, source_bucket=s3_bucket)

    reply = await dispatch(runtime, timer_event({"dry_run": True}), context())

    assert reply["outcomes"] == {"would_embed": 3}
    assert reply["ocr_pages"] == 3 + 1 + 1
    assert vision.stats.select() == []
    assert await object_keys(storage, s3_bucket, "embeddings/incoming/") == []

    # AND once read, what is kept is not counted again
    await create(runtime, s3_bucket, "incoming/a.pdf")
    await storage.put(s3_bucket, "incoming/a.pdf.metadata.json", b'{"dept": "buh"}')  # re-embeds a.pdf
    again = await dispatch(runtime, timer_event({"dry_run": True}), context())
    assert again["ocr_pages"] == 1 + 1


async def test_scans_parked_while_ocr_was_off_are_read_once_it_is_on(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    await storage.put(s3_bucket, "incoming/scan.png", scan_png("Приказ № 5"))
    off = ocr_runtime(make_runtime, vision, source_bucket=s3_bucket, ocr_enabled=False)
    assert (await dispatch(off, timer_event(None), context()))["outcomes"] == {"parked": 1}
    stays = await dispatch(off, timer_event(None), context())
    assert (stays["found"]["parked"], stays["outcomes"]) == (1, {})  # not tried again while off

    on = ocr_runtime(make_runtime, vision, source_bucket=s3_bucket)
    reply = await dispatch(on, timer_event(None), context())

    assert reply["outcomes"] == {"embedded": 1}
    (record,) = await records_of(storage, s3_bucket, "incoming/scan.png")
    assert "Приказ № 5" in record["text"]


async def test_reconcile_removes_the_pages_of_a_deleted_source(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    runtime = ocr_runtime(make_runtime, vision, source_bucket=s3_bucket)
    await storage.put(s3_bucket, "incoming/scan.png", scan_png("x"))
    await create(runtime, s3_bucket, "incoming/scan.png")
    await storage.delete(s3_bucket, "incoming/scan.png")  # no delete event: reconcile finds it
    await dispatch(runtime, timer_event(None), context())
    assert await object_keys(storage, s3_bucket, "embeddings/incoming/") == []


@pytest.mark.parametrize(
    "planted",
    [
        b"{not json",
        b'{"ocr_version": 1, "source_etag": "other", "model": "page", "languages": ["ru", "en"], '
        b'"pages": {"1": "forged"}}',
        b"[]",
    ],
)
async def test_a_damaged_or_foreign_ocr_state_is_read_afresh_never_parks(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator, planted: bytes
) -> None:
    key = "incoming/scan.png"
    await storage.put(s3_bucket, key, scan_png("Накладная № 31"))
    await storage.put(s3_bucket, f"embeddings/{key}.ocr.json", planted)
    reply = await create(ocr_runtime(make_runtime, vision), s3_bucket, key)
    assert reply["documents"][0]["outcome"] == "embedded"
    (record,) = await records_of(storage, s3_bucket, key)
    assert "Накладная № 31" in record["text"]
    assert vision.stats.pages_recognised == 1


async def test_crafted_scans_are_refused_before_anything_is_paid(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, vision: OcrEmulator
) -> None:
    runtime = ocr_runtime(make_runtime, vision)
    giant = scan_png("x")
    giant = giant[:16] + (70000).to_bytes(4, "big") + (70000).to_bytes(4, "big") + giant[24:]
    cases = {
        "incoming/giant.png": (giant, "document_too_large"),  # 4.9 gigapixels claimed
        "incoming/not-a.png": (b"GIF89a" + b"\0" * 100, "unsupported_document"),
        "incoming/thousand.pdf": (scanned_pdf([f"p{n}" for n in range(1001)]), "document_too_large"),
    }
    for key, (data, _error) in cases.items():
        await storage.put(s3_bucket, key, data)
        await create(runtime, s3_bucket, key)
    for key, (_data, error) in cases.items():
        assert (await read_json(storage, s3_bucket, f"embeddings/_errors/{key}.json"))["error"] == error, key
    assert vision.stats.select() == []


class _RecordingStorage(httpx.AsyncBaseTransport):
    """The real transport to SeaweedFS, recording the keys written."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.puts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT":
            self.puts.append(unquote(request.url.path))
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_instances_reading_scans_share_ocrs_quota_on_a_board_of_its_own(
    make_runtime: RuntimeFactory, storage: ObjectStorage, s3_bucket: str, api: FakeEmbeddingsAPI
) -> None:
    await storage.put(s3_bucket, "incoming/scan.pdf", scanned_pdf(PAGES[:2]))
    recording = _RecordingStorage()
    with OcrEmulator(OcrConfig(rps=100, ready_after_s=1.5)) as vision:
        runtime = ocr_runtime(
            make_runtime,
            vision,
            transports=Transports(embeddings=api.transport, storage=recording),
            source_bucket=s3_bucket,
        )
        await create(runtime, s3_bucket, "incoming/scan.pdf")
    ocr_board = [key for key in recording.puts if "/embeddings/_quota/ocr/members/" in key]
    embeddings_board = [key for key in recording.puts if "/embeddings/_quota/members/" in key]
    assert ocr_board  # announced while Vision read its pages
    assert embeddings_board  # and, for its chunks, among those sharing the embeddings quota
    assert not set(ocr_board) & set(embeddings_board)
