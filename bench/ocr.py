"""A 100-page scanned PDF read by Vision OCR (the loopback emulator) across a forced hand-over.

The emulator holds Vision's quota at OCR_RPS (5 recognitions a second, each PDF page one) and reads
an operation's pages at that pace; the pipeline's first invocation ends (6 s) while Vision still
reads, hands the document on through the queue with a delay, and the continuation collects the same
operation. Targets: every page recognised once (one operation, 100 pages billed), at >= 90% of the
quota from the first OCR request to the last page read, no 429, and every page's text in order with
its page number in each chunk's provenance.

    python -m bench.ocr
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx

from bench.common import bucket_storage, runtime_for, s3_server
from devstack.context import LocalContext
from devstack.s3server import S3Server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.outputs.layout import OutputLayout
from embedding_pipeline.pipeline.objects import embed_or_hand_over
from embedding_pipeline.runtime import Runtime, Transports
from testkit.ocr_emulator import OcrConfig, OcrEmulator
from testkit.scans import scanned_pdf
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator

PAGES = 100
QUOTA = 5.0
KEY = "incoming/scans/архив-актов.pdf"


def page_text(number: int) -> str:
    return (
        f"Акт сверки № {9000 + number} страница {number}. Поставщик ООО Ромашка, сумма {number * 1375} руб."
    )


class _Queue:
    """SendMessage answered in process: what the bench needs of Message Queue is the delay asked."""

    def __init__(self) -> None:
        self.sent: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(dict(parse_qsl(request.content.decode())))
        body = f"<SendMessageResponse><SendMessageResult><MessageId>m-{len(self.sent)}</MessageId>"
        return httpx.Response(200, text=body + "</SendMessageResult></SendMessageResponse>")


async def run(server: S3Server) -> dict[str, Any]:
    pdf = scanned_pdf([page_text(n) for n in range(1, PAGES + 1)])
    queue = _Queue()
    with (
        YandexEmulator(EmulatorConfig(rps=1000)) as embeddings,
        OcrEmulator(OcrConfig(rps=QUOTA, seconds_per_page=1 / QUOTA)) as vision,
    ):
        async with bucket_storage(server) as (storage, bucket):
            settings = runtime_for(
                server,
                embeddings.url,
                embeddings_rps=1000,
                ocr_url=vision.url,
                ocr_operations_url=vision.operations_url,
                ocr_rps=QUOTA,
                source_bucket=bucket,
                queue_url="https://message-queue.api.cloud.yandex.net/b1g/dj6/jobs",
                deadline_margin_s=0,
            ).settings
            runtime = Runtime(settings, Transports(queue=httpx.MockTransport(queue)))
            await storage.put(bucket, KEY, pdf)
            started = time.time()
            first = await runtime.open_invocation(LocalContext(timeout_s=6.0))
            handed = await embed_or_hand_over(first, bucket, KEY)
            delay = int(queue.sent[0].get("DelaySeconds", "0")) if queue.sent else 0
            await asyncio.sleep(delay)  # the queue keeps the continuation this long
            second = await runtime.open_invocation(LocalContext(timeout_s=600.0))
            done = await embed_or_hand_over(second, bucket, KEY, handed_over=1)
            finished = time.time()
            keys = OutputLayout(bucket, "embeddings/").document(KEY)
            records = [
                json.loads(line)
                for line in (await storage.get(bucket, keys.records, max_bytes=10**9) or b"").splitlines()
            ]
            manifest = json.loads(await storage.get(bucket, keys.manifest, max_bytes=10**6) or b"{}")
            await runtime.aclose()
        stats = vision.stats
    ocr_requests = stats.select()
    first_request = min(r.at for r in ocr_requests)
    last_read = max(r.at for r in stats.select(["getRecognition"], status=200))
    pages_in_order = [record["metadata"]["page"] for record in records]
    every_page = all(
        any(f"№ {9000 + n} " in r["text"] and r["metadata"]["page"] == n for r in records)
        for n in range(1, PAGES + 1)
    )
    ocr_seconds = last_read - first_request
    return {
        "pages": PAGES,
        "pdf_bytes": len(pdf),
        "quota_rps": QUOTA,
        "first_invocation": handed.outcome,
        "hand_over_delay_s": delay,
        "outcome": done.outcome,
        "operations_started": len(stats.operation_pages),
        "pages_billed": stats.pages_recognised,
        "manifest_ocr_pages": manifest["usage"]["ocr_pages"],
        "throttled": sum(r.status == 429 for r in ocr_requests),
        "ocr_seconds": round(ocr_seconds, 2),
        "pages_per_s": round(PAGES / ocr_seconds, 2),
        "share_of_quota": round(PAGES / ocr_seconds / QUOTA, 3),
        "end_to_end_s": round(finished - started, 2),
        "chunks": len(records),
        "pages_in_order": pages_in_order == sorted(pages_in_order),
        "every_page_with_its_number": every_page,
    }


def main() -> dict[str, Any]:
    with s3_server() as server:
        return asyncio.run(run(server))


if __name__ == "__main__":
    configure_logging("ERROR")
    print(json.dumps(main(), indent=2, ensure_ascii=False))
