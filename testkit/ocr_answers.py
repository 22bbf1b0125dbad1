"""What the OCR emulator answers, apart from HTTP: request validation and recognition results.

Kept apart from the server (testkit/ocr_emulator.py) and the operations (testkit/ocr_operations.py) so
each reads on its own: this module knows the API's shapes and limits as notes/ocr-contract.md has them,
the server knows the quota, the faults and the stats. Texts come from the scans' ground truth
(testkit/ocr_truth.py), never from pixels.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from testkit.ocr_truth import MIME_TYPES, ScanPage, UnreadableScan, read_scan

MODELS = ("page", "page-column-sort", "handwritten", "table", "markdown", "math-markdown")
MARKDOWN_MODELS = ("markdown", "math-markdown")
_LANGUAGE = re.compile(r"^(\*|[a-z]{2})$")

# gRPC status codes the API puts in its error bodies
INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED = 3, 5, 7, 8
INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 13, 14, 16


class OcrError(Exception):
    """An answer other than 200: its HTTP status and the `{"code", "message"}` body the API sends."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


def invalid(message: str) -> OcrError:
    """A 400 INVALID_ARGUMENT: what the service answers a request it cannot take."""
    return OcrError(400, INVALID_ARGUMENT, message)


@dataclass(frozen=True, slots=True)
class Limits:
    max_content_bytes: int
    max_megapixels: float
    max_async_pages: int


@dataclass(frozen=True, slots=True)
class Recognition:
    """A request the service accepted: the scan's pages, and how to recognise them."""

    pages: list[ScanPage]
    model: str
    languages: list[str]


def parse_request(raw: bytes, limits: Limits, *, asynchronous: bool) -> Recognition:
    """The recognition a request body asks for, or the 400 the real service would answer it with."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid("request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    mime = body.get("mimeType")
    if mime not in MIME_TYPES:
        raise invalid(f"unsupported mimeType {mime!r}: one of {', '.join(MIME_TYPES)}")
    model = body.get("model") or "page"
    if model not in MODELS:
        raise invalid(f"unknown model {model!r}: one of {', '.join(MODELS)}")
    languages = body.get("languageCodes", ["*"])
    if not isinstance(languages, list) or not all(
        isinstance(code, str) and _LANGUAGE.match(code) for code in languages
    ):
        raise invalid(f"languageCodes must be a list of ISO 639-1 codes, got {languages!r}")
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise invalid("content is required: the file, base64-encoded")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError):
        raise invalid("content is not valid base64") from None
    if len(data) > limits.max_content_bytes:
        raise invalid(f"file is too large: {len(data)} bytes, at most {limits.max_content_bytes}")
    try:
        pages = read_scan(data, mime)
    except UnreadableScan as error:
        raise invalid(f"invalid {mime} content: {error}") from None
    _check_pages(pages, mime, limits, asynchronous=asynchronous)
    return Recognition(pages, model, languages)


def _check_pages(pages: list[ScanPage], mime: str, limits: Limits, *, asynchronous: bool) -> None:
    if not pages:
        raise invalid("the PDF has no pages")
    if mime != "application/pdf":
        megapixels = pages[0].width * pages[0].height / 1_000_000
        if megapixels > limits.max_megapixels:
            raise invalid(
                f"image is too large: {megapixels:.1f} megapixels, at most {limits.max_megapixels:g}"
            )
    elif not asynchronous and len(pages) > 1:
        raise invalid(
            f"recognizeText takes a PDF of 1 page, this one has {len(pages)}: use recognizeTextAsync"
        )
    elif len(pages) > limits.max_async_pages:
        raise invalid(f"the PDF has {len(pages)} pages, at most {limits.max_async_pages}")


def _box(x: int, y: int, width: int, height: int) -> dict[str, Any]:
    corners = ((x, y), (x, y + height), (x + width, y + height), (x + width, y))
    return {"vertices": [{"x": str(cx), "y": str(cy)} for cx, cy in corners]}  # int64 as strings


def text_annotation(page: ScanPage, recognition: Recognition) -> dict[str, Any]:
    """A page's textAnnotation: fullText is the page's ground truth, each line ending in a newline as the
    service writes them; one block per paragraph with its lines and words at made-up positions."""
    text = page.text
    full_text = text if not text or text.endswith("\n") else text + "\n"
    blocks, y = [], 90
    for paragraph in re.split(r"\n\s*\n", text.strip("\n")) if text.strip() else []:
        top, lines = y, []
        for line in paragraph.split("\n"):
            words = [{"boundingBox": _box(90, y, 16 * len(word), 30), "text": word} for word in line.split()]
            lines.append({"boundingBox": _box(90, y, 16 * len(line), 30), "text": line, "words": words})
            y += 44
        languages = [{"languageCode": code} for code in recognition.languages]
        blocks.append(
            {"boundingBox": _box(90, top, page.width - 180, y - top), "lines": lines, "languages": languages}
        )
        y += 44
    return {
        "width": str(page.width),
        "height": str(page.height),
        "blocks": blocks,
        "entities": [],
        "tables": [],
        "fullText": full_text,
        "markdown": full_text if recognition.model in MARKDOWN_MODELS else "",
        "rotate": "ANGLE_0",
    }


def page_results(recognition: Recognition) -> list[dict[str, Any]]:
    """One `{"result": {...}}` per page, pages numbered from 0 as strings."""
    return [
        {"result": {"textAnnotation": text_annotation(page, recognition), "page": str(number)}}
        for number, page in enumerate(recognition.pages)
    ]
