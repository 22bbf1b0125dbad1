"""Unit: what OCR's side of parsing decides without Vision: images checked before they are paid for,
recognised pages put back in order, and the PDFs a document's unread pages are sent in."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from pypdf import PdfReader

from embedding_pipeline.clients.ocr import OcrUsage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import ConfigurationError, DocumentTooLarge, OutOfTime, UnsupportedDocument
from embedding_pipeline.metrics import InvocationMetrics
from embedding_pipeline.ocr.batches import pdf_batches
from embedding_pipeline.outputs.layout import OutputKey, OutputLayout
from embedding_pipeline.settings import load_settings
from embedding_pipeline.stages.documents import Limits, parse_document
from embedding_pipeline.stages.documents.model import ParsedDocument, Section
from embedding_pipeline.stages.documents.pages import with_recognised_pages
from testkit.adversarial import pdf_pages, text_page


def png(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(("key", "data"), [("scan.png", png(1200, 1600)), ("photo.JPG", jpeg(4000, 3000))])
def test_an_image_is_one_page_for_ocr(key: str, data: bytes) -> None:
    document = parse_document(data, key)
    assert (document.format, document.text, document.unread_pages) == ("image", "", (1,))


@pytest.mark.parametrize(
    ("key", "data", "reason"),
    [
        ("big.png", png(5000, 5000), "20 megapixels"),
        ("big.jpeg", jpeg(6000, 4000), "20 megapixels"),
    ],
)
def test_an_image_vision_would_refuse_is_parked_before_paying(key: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentTooLarge, match=reason.rsplit("|", maxsplit=1)[-1]):
        parse_document(data, key)


def test_an_image_over_10_mb_is_too_large() -> None:
    with pytest.raises(DocumentTooLarge, match="10 MB"):
        parse_document(png(100, 100) + b"\0" * (10 * 1024 * 1024), "huge.png")


@pytest.mark.parametrize(
    ("key", "data"),
    [("a.png", b"GIF89a...."), ("a.jpg", b"\x89PNG\r\n\x1a\n"), ("a.jpg", b"\xff\xd8\xff\xe0")],
)
def test_bytes_that_are_not_the_named_image_are_refused(key: str, data: bytes) -> None:
    with pytest.raises(UnsupportedDocument):
        parse_document(data, key)


def test_recognised_pages_join_the_text_layer_in_page_order() -> None:
    text = "page one\n\npage three"
    parsed = ParsedDocument(
        text, "pdf", (Section(0, 8, {"page": 1}), Section(10, 20, {"page": 3})), unread_pages=(2, 4)
    )
    read = with_recognised_pages(parsed, {2: "  скан два  ", 4: "   "})
    pieces = [(read.text[s.start : s.end], s.metadata) for s in read.sections]
    assert pieces == [
        ("page one", {"page": 1}),
        ("скан два", {"page": 2, "ocr": True}),
        ("page three", {"page": 3}),
    ]  # a blank recognition adds nothing
    assert read.unread_pages == ()


def pdf_of(pages: int) -> bytes:
    return pdf_pages([text_page(f"page {n}") for n in range(1, pages + 1)])


def page_texts(pdf: bytes) -> list[str]:
    return [(page.extract_text() or "").strip() for page in PdfReader(io.BytesIO(pdf)).pages]


def test_a_pdf_of_only_unread_pages_that_fits_is_sent_as_it_is() -> None:
    data = pdf_of(3)
    (batch,) = pdf_batches(data, [1, 2, 3])
    assert (batch.pages, batch.pdf) == ((1, 2, 3), data)


def test_only_the_unread_pages_are_sent_in_batches_of_at_most_200() -> None:
    data = pdf_of(450)
    wanted = [2, *range(5, 450)]
    batches = list(pdf_batches(data, wanted))
    assert [len(batch.pages) for batch in batches] == [200, 200, 46]
    assert [page for batch in batches for page in batch.pages] == wanted
    assert page_texts(batches[0].pdf)[:3] == ["page 2", "page 5", "page 6"]
    assert page_texts(batches[2].pdf)[-1] == "page 449"


def test_a_batch_over_the_size_cap_is_halved_and_a_page_over_it_is_too_large() -> None:
    data = pdf_of(8)
    one_page = len(next(iter(pdf_batches(data, [1]))).pdf)
    batches = list(pdf_batches(data, list(range(1, 9)), max_bytes=one_page * 3))
    assert all(len(batch.pdf) <= one_page * 3 for batch in batches)
    assert [page for batch in batches for page in batch.pages] == list(range(1, 9))
    with pytest.raises(DocumentTooLarge, match="page 1 takes"):
        list(pdf_batches(data, [1, 2], max_bytes=100))


def test_limits_still_apply_to_images() -> None:
    with pytest.raises(OutOfTime, match="time budget"):
        parse_document(png(10, 10), "a.png", limits=Limits(deadline=Deadline.after(-1)))


def test_the_ocr_pages_are_a_documents_output_and_an_areas_objects_are_not() -> None:
    layout = OutputLayout("b", "embeddings/")
    assert layout.parse("embeddings/incoming/scan.pdf.ocr.json") == OutputKey("ocr", "incoming/scan.pdf")
    assert layout.document("incoming/scan.pdf").ocr == "embeddings/incoming/scan.pdf.ocr.json"
    # The claim of a document named `x.ocr` ends like an OCR state: it is no document's output.
    assert layout.parse("embeddings/_claims/incoming/x.ocr.json") is None
    assert layout.parse("embeddings/_claims/incoming/x.manifest.json") is None
    assert layout.parse("embeddings/_inline/abc.ocr.json") == OutputKey("ocr", "_inline/abc")


@pytest.mark.parametrize(
    ("name", "value"),
    [("ocr_languages", "russian"), ("ocr_model", "Page Model"), ("ocr_url", "ftp://x"), ("ocr_rps", "0")],
)
def test_bad_ocr_settings_stop_at_cold_start_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name.upper()):
        load_settings(yc_folder_id="b1g", **{name: value})


def test_ocr_is_on_by_default_at_yandexs_endpoints() -> None:
    settings = load_settings(yc_folder_id="b1g")
    assert settings.ocr_enabled
    assert settings.ocr_url == "https://ocr.api.cloud.yandex.net/ocr/v1"
    assert settings.ocr_operations_url == "https://operation.api.cloud.yandex.net/operations"
    assert (settings.ocr_model, settings.ocr_language_codes, settings.ocr_rps) == ("page", ["ru", "en"], 5.0)


def test_an_invocations_ocr_use_becomes_its_counters() -> None:
    metrics = InvocationMetrics("storage")
    metrics.about("docs")
    metrics.add_ocr_usage(OcrUsage(requests=3, pages=102, throttled=1))
    assert [(p.name, p.bucket, p.value) for p in metrics.points()] == [
        ("ocr_pages", "docs", 102),
        ("ocr_requests", "docs", 3),
        ("ocr_throttled", "docs", 1),
    ]
