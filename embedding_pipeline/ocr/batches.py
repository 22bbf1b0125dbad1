"""What of a PDF is sent to Vision OCR: its unread pages, as PDFs that Vision takes.

Vision reads a PDF of up to 200 pages and 10 MB in one asynchronous operation (one page: at once).
A PDF whose every page is unread and that fits is sent as it is; otherwise the unread pages are
copied into PDFs of their own (pypdf), as many pages to each as fit, so a page with a usable text
layer is never paid for and a page is sent once. A single page over 10 MB cannot be sent at all.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from embedding_pipeline.errors import DocumentTooLarge
from embedding_pipeline.stages.documents.images import OCR_MAX_BYTES
from embedding_pipeline.stages.documents.office import PDF_LIMITS

MAX_PAGES_PER_OPERATION = 200


@dataclass(frozen=True, slots=True)
class PdfBatch:
    pages: tuple[int, ...]  # the document's page numbers (1-based), in the order the PDF holds them
    pdf: bytes


def pdf_batches(
    data: bytes,
    pages: list[int],
    *,
    max_bytes: int = OCR_MAX_BYTES,
    max_pages: int = MAX_PAGES_PER_OPERATION,
) -> Iterator[PdfBatch]:
    """PDFs holding `pages` of the PDF `data` (in their order), each within Vision's limits."""
    from pypdf import PdfReader, apply_configuration  # noqa: PLC0415 - only scans need it

    with apply_configuration(None, **PDF_LIMITS):
        reader = PdfReader(io.BytesIO(data))
        total = len(reader.pages)
        if pages == list(range(1, total + 1)) and total <= max_pages and len(data) <= max_bytes:
            yield PdfBatch(tuple(pages), data)
            return
        for start in range(0, len(pages), max_pages):
            yield from _fitting(reader, tuple(pages[start : start + max_pages]), max_bytes)


def _fitting(reader: Any, pages: tuple[int, ...], max_bytes: int) -> Iterator[PdfBatch]:
    """`pages` in one PDF if it fits, else in halves (each tried the same way)."""
    pdf = _copy(reader, pages)
    if len(pdf) <= max_bytes:
        yield PdfBatch(pages, pdf)
        return
    if len(pages) == 1:
        raise DocumentTooLarge(
            f"page {pages[0]} takes {len(pdf)} bytes: Vision OCR reads at most 10 MB at a time"
        )
    middle = len(pages) // 2
    yield from _fitting(reader, pages[:middle], max_bytes)
    yield from _fitting(reader, pages[middle:], max_bytes)


def _copy(reader: Any, pages: tuple[int, ...]) -> bytes:
    from pypdf import PdfWriter  # noqa: PLC0415

    writer = PdfWriter()
    for page in pages:
        writer.add_page(reader.pages[page - 1])
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
