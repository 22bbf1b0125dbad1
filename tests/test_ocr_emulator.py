"""Unit and functional: the scans testkit builds (their ground truth, what pypdf makes of them) and the
loopback emulator of Yandex Vision OCR (testkit/ocr_emulator.py) spoken to over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pypdf import PdfReader

from devstack.s3server import free_port
from testkit.adversarial import pdf_pages, text_page
from testkit.ocr_emulator import OcrConfig, OcrEmulator
from testkit.ocr_truth import UnreadableScan, mark_jpeg, read_scan
from testkit.scans import garbled_pdf, ground_truth, mixed_pdf, scan_jpeg, scan_png, scanned_pdf, text_pdf
from tests.support import ROOT, run_python

PDF, PNG, JPEG = "application/pdf", "image/png", "image/jpeg"
RUSSIAN = "Счёт № 17 от 3 марта\nИтого к оплате: 1 250 рублей"
AUTH = {"Authorization": "Api-Key ocr-emulator-test-key", "x-folder-id": "b1gfolder"}


def _images(page: Any) -> list[Any]:
    xobjects = page["/Resources"].get("/XObject", {})
    return [xobjects[name].get_object() for name in xobjects]


def _letters(text: str) -> int:
    return sum(char.isalpha() for char in text)


# --- The builders -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("build", "mime", "kind"), [(scan_png, PNG, "PNG"), (scan_jpeg, JPEG, "JPEG")])
def test_an_image_scan_says_its_text_and_shows_it(build: Any, mime: str, kind: str) -> None:
    data = build(RUSSIAN)
    assert ground_truth(data, mime) == [RUSSIAN]
    image = Image.open(io.BytesIO(data))
    assert (image.format, image.mode, image.width) == (kind, "L", 1200)
    assert read_scan(data, mime)[0].height == image.height
    histogram = image.histogram()  # black text on white: mostly white, some black
    assert sum(histogram[240:]) > 0.8 * image.width * image.height
    assert sum(histogram[:64]) > 1000


def test_a_jpeg_marker_longer_than_one_segment_is_split_and_read_back_whole() -> None:
    text = "длинный текст\n" * 6000  # 160 KB of UTF-8: three COM segments
    out = io.BytesIO()
    Image.new("L", (40, 30), 255).save(out, "JPEG")
    marked = mark_jpeg(out.getvalue(), text)
    assert marked.count(b"testkit-ocr:") == 3
    assert ground_truth(marked, JPEG) == [text]
    assert Image.open(io.BytesIO(marked)).size == (40, 30)


def test_an_image_without_the_marker_says_nothing() -> None:
    out = io.BytesIO()
    Image.new("L", (40, 30), 255).save(out, "PNG")
    assert read_scan(out.getvalue(), PNG)[0].text == ""
    assert ground_truth(pdf_pages([text_page("no marker")]), PDF) == [""]


def test_the_ground_truth_is_read_without_pillow(tmp_path: Path) -> None:
    # GIVEN scans on disk, and an interpreter where Pillow cannot be imported (the emulator runs in
    # benchmarks, and the function's own dependencies have no Pillow)
    files = {"a.png": scan_png("png"), "a.jpg": scan_jpeg("jpeg"), "a.pdf": scanned_pdf(["pdf", "страница"])}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    script = (
        "import sys, pathlib; sys.modules['PIL'] = None\n"
        "from testkit.ocr_emulator import OcrEmulator\n"
        "from testkit.ocr_truth import ground_truth\n"
        f"folder = pathlib.Path({str(tmp_path)!r})\n"
        "for name, mime in [('a.png', 'image/png'), ('a.jpg', 'image/jpeg'), ('a.pdf', 'application/pdf')]:\n"
        "    print(ground_truth((folder / name).read_bytes(), mime))\n"
    )
    # WHEN it reads what they say
    done = run_python("-c", script, env=dict(os.environ))
    # THEN it reads it all
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["['png']", "['jpeg']", "['pdf', 'страница']"]


def test_bytes_of_another_type_are_unreadable() -> None:
    with pytest.raises(UnreadableScan):
        read_scan(scan_png("x"), JPEG)
    with pytest.raises(UnreadableScan):
        read_scan(b"%PDF-1.4 nothing", PDF)
    with pytest.raises(ValueError, match="unsupported mime type"):
        read_scan(scan_png("x"), "image/tiff")


def test_a_scanned_pdf_has_one_image_a_page_and_no_text_layer() -> None:
    pages = ["First page, in English.", RUSSIAN, "Третья страница (x) \\ end"]
    data = scanned_pdf(pages)
    assert ground_truth(data, PDF) == pages
    for page in PdfReader(io.BytesIO(data)).pages:
        assert page.extract_text().strip() == ""
        assert [image["/Subtype"] for image in _images(page)] == ["/Image"]


def test_a_text_page_extracts_as_its_text() -> None:
    pages = ["Plain ASCII text (with parentheses) and a back\\slash.", RUSSIAN, "Café «naïve» — déjà vu"]
    data = text_pdf(pages)
    reader = PdfReader(io.BytesIO(data))
    assert [" ".join(page.extract_text().split()) for page in reader.pages] == [
        " ".join(text.split()) for text in pages
    ]
    assert all(_images(page) == [] for page in reader.pages)
    assert ground_truth(data, PDF) == pages


def test_a_garbled_page_extracts_as_symbols_while_it_shows_and_says_its_text() -> None:
    data = garbled_pdf(["Invoice number 42 for ACME Corporation", RUSSIAN])
    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:
        extracted = page.extract_text()
        assert len(extracted.strip()) > 10  # a text layer is there...
        assert _letters(extracted) == 0  # ...and it holds no letter
        assert len(_images(page)) == 1
    assert ground_truth(data, PDF) == ["Invoice number 42 for ACME Corporation", RUSSIAN]


def test_a_mixed_pdf_has_each_page_of_its_kind() -> None:
    data = mixed_pdf([("scanned page", "scan"), ("text page", "text"), ("garbled page", "garbled")])
    extracted = [page.extract_text().strip() for page in PdfReader(io.BytesIO(data)).pages]
    assert extracted[0] == ""
    assert extracted[1] == "text page"
    assert extracted[2]
    assert _letters(extracted[2]) == 0
    assert ground_truth(data, PDF) == ["scanned page", "text page", "garbled page"]


def test_a_hundred_page_scan_builds_quickly_and_small() -> None:
    started = time.perf_counter()
    data = scanned_pdf(
        [f"Страница {n}. Lorem ipsum dolor sit amet, consectetur adipiscing." * 4 for n in range(100)]
    )
    assert time.perf_counter() - started < 30  # about 1.5 s here
    assert len(data) < 2_000_000
    assert len(ground_truth(data, PDF)) == 100


# --- The emulator -------------------------------------------------------------------------------------


@pytest.fixture
def ocr() -> Iterator[OcrEmulator]:
    with OcrEmulator(OcrConfig(rps=1000)) as emulator:
        yield emulator


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def request(data: bytes, mime: str, *, model: str = "page", **extra: Any) -> dict[str, Any]:
    return {
        "mimeType": mime,
        "languageCodes": ["ru", "en"],
        "model": model,
        "content": base64.b64encode(data).decode(),
    } | extra


def recognize(
    http: httpx.Client, ocr: OcrEmulator, body: Any, *, asynchronous: bool = False
) -> httpx.Response:
    method = "recognizeTextAsync" if asynchronous else "recognizeText"
    return http.post(f"{ocr.url}/{method}", json=body, headers=AUTH)


def poll(http: httpx.Client, ocr: OcrEmulator, operation_id: str) -> dict[str, Any]:
    reply = http.get(f"{ocr.operations_url}/{operation_id}", headers=AUTH)
    assert reply.status_code == 200
    result: dict[str, Any] = reply.json()
    return result


def results(http: httpx.Client, ocr: OcrEmulator, operation_id: str) -> httpx.Response:
    return http.get(f"{ocr.url}/getRecognition", params={"operationId": operation_id}, headers=AUTH)


def test_the_urls_are_the_settings_on_one_port(ocr: OcrEmulator) -> None:
    assert ocr.url.endswith("/ocr/v1")
    assert ocr.operations_url.endswith("/operations")
    assert ocr.url.removesuffix("/ocr/v1") == ocr.operations_url.removesuffix("/operations")


@pytest.mark.parametrize(
    ("build", "mime"), [(scan_png, PNG), (scan_jpeg, JPEG), (lambda t: scanned_pdf([t]), PDF)]
)
def test_recognize_text_answers_what_the_scan_says(
    ocr: OcrEmulator, http: httpx.Client, build: Any, mime: str
) -> None:
    reply = recognize(http, ocr, request(build(RUSSIAN), mime))
    assert reply.status_code == 200
    result = reply.json()["result"]
    assert result["page"] == "0"
    annotation = result["textAnnotation"]
    assert annotation["fullText"] == RUSSIAN + "\n"
    assert annotation["markdown"] == ""
    assert [line["text"] for block in annotation["blocks"] for line in block["lines"]] == RUSSIAN.split("\n")
    assert int(annotation["width"]) > 0
    assert int(annotation["height"]) > 0


@pytest.mark.parametrize("model", ["markdown", "math-markdown"])
def test_markdown_models_fill_markdown(ocr: OcrEmulator, http: httpx.Client, model: str) -> None:
    reply = recognize(http, ocr, request(scan_png("# Title"), PNG, model=model))
    assert reply.json()["result"]["textAnnotation"]["markdown"] == "# Title\n"


def test_a_scan_without_a_marker_is_a_blank_page(ocr: OcrEmulator, http: httpx.Client) -> None:
    reply = recognize(http, ocr, request(pdf_pages([text_page("not a scan")]), PDF))
    assert reply.json()["result"]["textAnnotation"]["fullText"] == ""


def test_an_async_pdf_is_pending_then_done_and_read_as_json_lines(http: httpx.Client) -> None:
    pages = ["page one", RUSSIAN, "", "page four"]
    with OcrEmulator(OcrConfig(rps=1000, ready_after_polls=2)) as ocr:
        started = recognize(http, ocr, request(scanned_pdf(pages), PDF), asynchronous=True)
        assert started.status_code == 200
        operation = started.json()
        assert operation["done"] is False
        assert operation["description"] == "OCR async recognition"
        assert results(http, ocr, operation["id"]).json()["code"] == 5
        assert [poll(http, ocr, operation["id"])["done"] for _ in range(3)] == [False, False, True]
        assert poll(http, ocr, operation["id"])["response"] == {
            "@type": "type.googleapis.com/google.protobuf.Empty"
        }
        reply = results(http, ocr, operation["id"])
        assert reply.status_code == 200
        lines = [json.loads(line) for line in reply.text.splitlines()]
        assert [line["result"]["page"] for line in lines] == ["0", "1", "2", "3"]
        assert [line["result"]["textAnnotation"]["fullText"] for line in lines] == [
            "page one\n",
            RUSSIAN + "\n",
            "",
            "page four\n",
        ]
        assert ocr.stats.operation_pages == {operation["id"]: 4}
        assert ocr.stats.pages_recognised == 4


def test_an_operation_is_pending_for_ready_after_s(http: httpx.Client) -> None:
    with OcrEmulator(OcrConfig(ready_after_s=0.5)) as ocr:
        operation = recognize(http, ocr, request(scan_png("x"), PNG), asynchronous=True).json()
        assert poll(http, ocr, operation["id"])["done"] is False
        assert results(http, ocr, operation["id"]).status_code == 404
        time.sleep(0.6)
        assert poll(http, ocr, operation["id"])["done"] is True
        assert results(http, ocr, operation["id"]).status_code == 200


def test_an_operation_that_never_finishes(http: httpx.Client) -> None:
    with OcrEmulator(OcrConfig(rps=1000, never_finish=True)) as ocr:
        operation = recognize(http, ocr, request(scan_png("x"), PNG), asynchronous=True).json()
        assert [poll(http, ocr, operation["id"])["done"] for _ in range(20)] == [False] * 20
        assert results(http, ocr, operation["id"]).status_code == 404


def test_a_failed_operation_is_done_with_an_error(http: httpx.Client) -> None:
    with OcrEmulator(OcrConfig(fail_operations=1.0)) as ocr:
        operation = recognize(http, ocr, request(scanned_pdf(["a", "b"]), PDF), asynchronous=True).json()
        done = poll(http, ocr, operation["id"])
        assert done["done"] is True
        assert "response" not in done
        assert done["error"]["code"] == 3
        assert done["error"]["details"] == []
        reply = results(http, ocr, operation["id"])
        assert (reply.status_code, reply.json()["code"]) == (400, 3)


def test_an_unknown_operation_is_a_404(ocr: OcrEmulator, http: httpx.Client) -> None:
    reply = http.get(f"{ocr.operations_url}/fbvnosuchoperation0", headers=AUTH)
    assert (reply.status_code, reply.json()) == (
        404,
        {"code": 5, "message": "Operation fbvnosuchoperation0 not found"},
    )
    assert results(http, ocr, "fbvnosuchoperation0").status_code == 404


def test_the_quota_throttles_recognitions_but_not_polls(http: httpx.Client) -> None:
    with OcrEmulator(OcrConfig(rps=3)) as ocr:
        operation = recognize(http, ocr, request(scan_png("x"), PNG), asynchronous=True).json()
        statuses = [recognize(http, ocr, request(scan_png("x"), PNG)).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]
        throttled = recognize(http, ocr, request(scan_png("x"), PNG))
        assert throttled.json()["code"] == 8
        assert "retry-after" not in throttled.headers
        assert poll(http, ocr, operation["id"])["done"] is True  # polls are not counted
        assert results(http, ocr, operation["id"]).status_code == 429  # getRecognition is
        time.sleep(1.05)
        assert results(http, ocr, operation["id"]).status_code == 200
        assert len(ocr.stats.select(status=429)) == 4
        assert [r.endpoint for r in ocr.stats.select(["operations"])] == ["operations"]


def test_concurrent_clients_together_get_the_quota(ocr: OcrEmulator) -> None:
    # GIVEN a quota of 5 requests a second and four clients asking as fast as they can for 1.5 s
    ocr.set_rps(5)
    body = request(scan_png("x"), PNG)
    ends = time.monotonic() + 1.5

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while time.monotonic() < ends:
                recognize(http, ocr, body)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # THEN the emulator let in what a sliding second allows over 1.5 s (two windows' worth at most)
    admitted = ocr.stats.select(["recognizeText"], status=200)
    assert 5 <= len(admitted) <= 10
    assert len(ocr.stats.select(["recognizeText"], status=429)) > len(admitted)
    assert ocr.stats.pages_recognised == len(admitted)


def test_a_request_without_authorization_is_a_401(ocr: OcrEmulator, http: httpx.Client) -> None:
    body = request(scan_png("x"), PNG)
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        reply = http.post(f"{ocr.url}/recognizeText", json=body, headers=headers)
        assert (reply.status_code, reply.json()["code"]) == (401, 16)
    assert http.get(f"{ocr.operations_url}/any").status_code == 401


def test_an_unknown_method_or_path_is_a_404(ocr: OcrEmulator, http: httpx.Client) -> None:
    assert http.get(f"{ocr.url}/recognizeText", headers=AUTH).status_code == 404
    assert http.post(f"{ocr.operations_url}/any", headers=AUTH).status_code == 404
    assert http.post(f"{ocr.url}/recognizeTextSync", json={}, headers=AUTH).json()["code"] == 5


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'["a list"]', "JSON object"),
        (request(scan_png("x"), "image/tiff"), "unsupported mimeType"),
        (request(scan_png("x"), PNG, model="handwriting"), "unknown model"),
        (request(scan_png("x"), PNG, languageCodes="ru"), "languageCodes"),
        (request(b"", PNG) | {"content": "!!not base64!!"}, "not valid base64"),
        (request(scan_png("x"), JPEG), "invalid image/jpeg content"),
        (request(scanned_pdf(["one", "two"]), PDF), "1 page"),
    ],
)
def test_a_bad_recognition_is_a_400(ocr: OcrEmulator, http: httpx.Client, body: Any, message: str) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = http.post(f"{ocr.url}/recognizeText", content=content, headers=AUTH)
    assert (reply.status_code, reply.json()["code"]) == (400, 3)
    assert message in reply.json()["message"]


def test_a_file_over_the_size_limit_is_a_400(http: httpx.Client) -> None:
    small, large = scan_png("x"), scan_png("x " * 2000)
    with OcrEmulator(OcrConfig(max_content_bytes=len(small))) as ocr:
        reply = recognize(http, ocr, request(large, PNG))
        assert reply.status_code == 400
        assert f"{len(large)} bytes" in reply.json()["message"]
        assert recognize(http, ocr, request(small, PNG)).status_code == 200


def test_an_image_over_the_megapixels_is_a_400(http: httpx.Client) -> None:
    with OcrEmulator(OcrConfig(max_megapixels=0.2)) as ocr:
        reply = recognize(http, ocr, request(scan_png("x", width=1200), PNG))
        assert reply.status_code == 400
        assert "megapixels" in reply.json()["message"]


def test_an_async_pdf_over_200_pages_is_a_400(ocr: OcrEmulator, http: httpx.Client) -> None:
    data = scanned_pdf(["the same page"] * 201)
    reply = recognize(http, ocr, request(data, PDF), asynchronous=True)
    assert (reply.status_code, reply.json()["code"]) == (400, 3)
    assert "201 pages" in reply.json()["message"]
    assert (
        recognize(
            http, ocr, request(scanned_pdf(["the same page"] * 200), PDF), asynchronous=True
        ).status_code
        == 200
    )


def test_refused_content_denied_access_and_faults(http: httpx.Client) -> None:
    body = request(scan_png("x"), PNG)
    with OcrEmulator(OcrConfig(refuse_content="unsupported image")) as ocr:
        reply = recognize(http, ocr, body)
        assert reply.status_code == 400
        assert reply.json() == {"code": 3, "message": "unsupported image"}
    with OcrEmulator(OcrConfig(deny_access=True)) as ocr:
        assert recognize(http, ocr, body).json()["code"] == 7
    with OcrEmulator(OcrConfig(fault_rate=1.0, faults=("503",))) as ocr:
        reply = recognize(http, ocr, body, asynchronous=True)
        assert (reply.status_code, reply.json()["code"]) == (503, 14)
        assert ocr.stats.operation_pages == {}  # a fault starts nothing
    with OcrEmulator(OcrConfig(rps=1000, fault_rate=0.5, seed=3)) as ocr:
        statuses = {recognize(http, ocr, body).status_code for _ in range(20)}
        assert statuses == {200, 500, 503}


def test_the_stats_record_every_request(ocr: OcrEmulator, http: httpx.Client) -> None:
    recognize(http, ocr, request(scan_png("x"), PNG))
    http.post(f"{ocr.url}/recognizeText", json={}, headers={"x-data-logging-enabled": "false"})
    operation = recognize(http, ocr, request(scanned_pdf(["a", "b", "c"]), PDF), asynchronous=True).json()
    poll(http, ocr, operation["id"])
    results(http, ocr, operation["id"])
    records = ocr.stats.select()
    assert [(r.endpoint, r.status, r.pages) for r in records] == [
        ("recognizeText", 200, 1),
        ("recognizeText", 401, 0),
        ("recognizeTextAsync", 200, 3),
        ("operations", 200, 0),
        ("getRecognition", 200, 0),
    ]
    assert records[0].folder_id == "b1gfolder"
    assert records[1].data_logging == "false"
    assert records == sorted(records, key=lambda r: r.at)
    summary = http.get(ocr.url.removesuffix("/ocr/v1") + "/_emulator/stats").json()
    assert (summary["requests"], summary["pages_recognised"], summary["operations_started"]) == (5, 4, 1)


def test_the_entry_point_serves_on_the_port_given() -> None:
    port = free_port()
    command = [sys.executable, "-m", "testkit.ocr_emulator", "--port", str(port), "--rps", "5"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert f"127.0.0.1:{port}/ocr/v1" in process.stdout.readline()
            url = f"http://127.0.0.1:{port}/ocr/v1/recognizeText"
            reply = httpx.post(url, json=request(scan_png("hi"), PNG), headers=AUTH)
            assert reply.json()["result"]["textAnnotation"]["fullText"] == "hi\n"
        finally:
            process.terminate()
