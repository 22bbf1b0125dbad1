"""Tesseract, the real OCR engine that stands in for Yandex Vision OCR's (devstack/ocr_server.py serves it).

What a request sends is checked here as Vision OCR checks it (a PNG that is a PNG, a JPEG that is a
JPEG, a PDF pypdf can open, at most 20 megapixels and 200 pages), so bad content is refused at once
with a 400 and only readable pages reach the engine. An image goes to the `tesseract` binary as it
is; a PDF page is read from its text layer when it has one, else from the images drawn on it (a
scanned page is one image XObject), each re-encoded as PNG and read in turn.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image
    from pypdf import PageObject

LANGUAGES = ("rus", "eng")
INSTALL_HINT = (
    "sudo apt-get install tesseract-ocr tesseract-ocr-rus (macOS: brew install tesseract tesseract-lang)"
)
MIME_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "application/pdf": "PDF"}
MAX_MEGAPIXELS = 20
MAX_PAGES = 200
PAGE_TIMEOUT_S = 120.0


class BadContent(Exception):
    """What Vision OCR answers with 400 (code 3): content it cannot take."""


class EngineError(Exception):
    """The engine failed on content that looked readable: the message says why."""


@dataclass(frozen=True, slots=True)
class Page:
    text: str  # Vision OCR's fullText: one line per line of text, each ending in "\n"
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Tesseract:
    binary: str
    version: str  # "tesseract 5.3.0"

    def read_image(self, data: bytes) -> str:
        """The text of a PNG or JPEG (checked beforehand: tesseract reads any other input on stdin
        as a list of file names to open)."""
        try:
            done = subprocess.run(  # noqa: S603 - fixed argument list, the content on stdin
                [self.binary, "stdin", "stdout", "-l", "+".join(LANGUAGES)],
                input=data,
                capture_output=True,
                timeout=PAGE_TIMEOUT_S,
                check=False,
                # Tesseract's OpenMP threads cost more than they bring on a small, shared machine: an
                # A4 page took 2.5 s with one and 17-20 s with its default on this project's 2 cores.
                env={**os.environ, "OMP_THREAD_LIMIT": "1"},
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(f"tesseract read one image for over {PAGE_TIMEOUT_S:g} s") from exc
        except OSError as exc:
            raise EngineError(f"tesseract could not run: {exc}") from exc
        if done.returncode != 0:
            said = done.stderr.decode(errors="replace").strip().splitlines()
            raise EngineError(f"tesseract failed (exit {done.returncode}): {said[-1] if said else ''}")
        return done.stdout.decode(errors="replace")


def find_tesseract(which: Callable[[str], str | None] = shutil.which) -> Tesseract | None:
    """The `tesseract` on PATH if it reads Russian and English, else None."""
    binary = which("tesseract")
    if binary is None:
        return None
    try:
        langs = _run(binary, "--list-langs")
        version = _run(binary, "--version")
    except (OSError, subprocess.SubprocessError):
        return None
    # The first line is "List of available languages in ...", then one code a line.
    if not set(LANGUAGES) <= {line.strip() for line in langs.splitlines()[1:]}:
        return None
    return Tesseract(binary, version.splitlines()[0].strip() if version else "tesseract")


def _run(binary: str, flag: str) -> str:
    # Tesseract 4 printed these on stderr, 5 on stdout.
    done = subprocess.run(  # noqa: S603 - fixed argument list
        [binary, flag], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout or done.stderr


def full_text(text: str) -> str:
    """Tesseract's output as Vision OCR's fullText: a line per line, no blank ones, each ending in "\\n"."""
    lines = [line.rstrip() for line in text.replace("\f", "\n").splitlines()]
    return "".join(f"{line}\n" for line in lines if line)


class ImagePage:
    """A PNG or JPEG: one page."""

    def __init__(self, data: bytes, width: int, height: int) -> None:
        self._data, self.width, self.height = data, width, height

    def read(self, engine: Tesseract) -> Page:
        return Page(full_text(engine.read_image(self._data)), self.width, self.height)


class PdfPage:
    """One page of a PDF: its text layer, or its images read by the engine."""

    def __init__(self, page: PageObject, number: int) -> None:
        self._page, self._number = page, number

    def read(self, engine: Tesseract) -> Page:
        box = self._page.mediabox
        width, height = int(box.width), int(box.height)
        try:
            layer = self._page.extract_text() or ""
            if layer.strip():
                return Page(full_text(layer), width, height)
            images = [image.image for image in self._page.images]
        except Exception as exc:  # pypdf raises many kinds on a damaged page
            raise EngineError(f"page {self._number + 1}: pypdf could not read it: {exc}") from exc
        texts = [engine.read_image(_png(image)) for image in images if image is not None]
        if images and images[0] is not None:
            width, height = images[0].size
        return Page("".join(full_text(text) for text in texts), width, height)


def _png(image: Image) -> bytes:
    if image.mode not in ("1", "L", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, palette and others: PNG cannot hold some, tesseract wants few
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def pages_of(mime_type: str, data: bytes) -> list[ImagePage | PdfPage]:
    """The pages of this content, checked as Vision OCR checks it, not yet read; BadContent if refused."""
    kind = MIME_TYPES.get(mime_type)
    if kind is None:
        raise BadContent(f"unsupported mimeType {mime_type!r}: JPEG, PNG and PDF are accepted")
    if kind == "PDF":
        return _pdf_pages(data)
    return [_image_page(data, kind)]


def _image_page(data: bytes, kind: str) -> ImagePage:
    # Deferred: Pillow comes with requirements-local.txt, and `embedpipe` imports this module without it.
    from PIL import Image  # noqa: PLC0415

    try:
        with Image.open(io.BytesIO(data)) as image:
            found, (width, height) = image.format, image.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadContent(f"the content is not a readable {kind} image: {exc}") from exc
    if found != kind:
        raise BadContent(f"the content is {found}, not {kind} as mimeType says")
    if width * height > MAX_MEGAPIXELS * 1_000_000:
        raise BadContent(f"the image is {width}x{height}, over {MAX_MEGAPIXELS} megapixels")
    return ImagePage(data, width, height)


def _pdf_pages(data: bytes) -> list[ImagePage | PdfPage]:
    from pypdf import PdfReader  # noqa: PLC0415 - as in the pipeline: only PDFs pay for importing it

    try:
        reader = PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
        pages: list[Any] = [] if encrypted else list(reader.pages)
    except Exception as exc:  # pypdf raises many kinds on a damaged file
        raise BadContent(f"the content is not a readable PDF: {exc}") from exc
    if encrypted:
        raise BadContent("the PDF is encrypted")
    if not pages:
        raise BadContent("the PDF has no pages")
    if len(pages) > MAX_PAGES:
        raise BadContent(f"the PDF has {len(pages)} pages, over the limit of {MAX_PAGES}")
    return [PdfPage(page, number) for number, page in enumerate(pages)]
