"""PDF (pypdf, the text layer, page by page) and DOCX (zipfile + expat, streamed; python-docx would
pull in lxml and hold the whole tree)."""

from __future__ import annotations

import io
from typing import Any
from xml.parsers import expat

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, PipelineError, UnsupportedDocument
from embedding_pipeline.stages.documents.model import (
    MAX_TEXT_CHARS,
    Limits,
    Meter,
    ParsedDocument,
    TextBuilder,
    has_text,
)
from embedding_pipeline.stages.documents.text_layer import needs_ocr, page_shows_image
from embedding_pipeline.stages.documents.zipsafe import open_package
from embedding_pipeline.text_safety import lone_surrogate_at

# Word's XML is 10-20 times its text: zipsafe.MAX_XML_BYTES (64 MiB) is a book of several thousand
# pages. The cap bounds the time (expat reads ~50 MB/s); memory is bounded anyway, as the XML is
# streamed and only w:t text is kept (at most MAX_TEXT_CHARS of it).
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main}"  # expat's "namespace}name"
_TEXT, _TAB, _BREAKS = _W + "t", _W + "tab", (_W + "br", _W + "cr")

# pypdf's own limits, lowered to fit the function's 256 MB. Parsing a page's content stream costs
# ~100 bytes of Python objects per operand or operator (measured: 5.6 MB of drawing operators took
# 290 MB), so a page may hold 500,000 of them (~50 MB at a time); a stream may inflate to 32 MB (a large
# embedded CJK font fits; pypdf's 75 MB default took 170 MB for one stream); a page tree node costs
# several KB, so 10,000 pages (~50 MB) at most. Each limit reached is a LimitReachedError.
_MAX_PDF_PAGES = 10_000
PDF_LIMITS: dict[str, int] = {
    "stream_parsing_work_maximum_count": 500_000,
    "zlib_maximum_output_length": 32_000_000,
    "lzw_maximum_output_length": 32_000_000,
    "run_length_maximum_output_length": 32_000_000,
    "brotli_maximum_output_length": 32_000_000,
    "array_based_stream_maximum_output_length": 32_000_000,
    "page_tree_maximum_entries": _MAX_PDF_PAGES + 1_000,  # intermediate /Pages nodes count too
}


def pdf_pages(data: bytes, limits: Limits) -> ParsedDocument:
    """One section per page with a usable text layer; the others, a scan's or a broken font's, are
    the document's unread pages (text_layer.py decides), for OCR. Whatever pypdf raises is
    UnsupportedDocument naming it: pypdf raises its own errors, but also AssertionError,
    RecursionError, KeyError and others on crafted files."""
    pages = TextBuilder("pdf", sectioned=True)
    unread: list[int] = []
    try:
        _read_pdf(data, Meter(limits, "parsing"), pages, unread)
    except PipelineError:
        raise
    except RecursionError:
        raise UnsupportedDocument("broken PDF: objects nested too deeply (RecursionError)") from None
    except MemoryError:
        raise UnsupportedDocument("PDF needs more memory than the function has (MemoryError)") from None
    except Exception as exc:  # pypdf on crafted input: see the docstring
        detail = f": {str(exc)[:160]}" if str(exc) else ""
        raise UnsupportedDocument(f"broken PDF ({type(exc).__name__}{detail})") from None
    if not pages.length and not unread:
        raise EmptyDocument("PDF has no text")
    document = pages.document()
    return ParsedDocument(document.text, document.format, document.sections, unread_pages=tuple(unread))


def _read_pdf(data: bytes, meter: Meter, pages: TextBuilder, unread: list[int]) -> None:
    # Imported here: only PDFs need pypdf, and importing it costs cold-start time on every instance.
    from pypdf import PdfReader, apply_configuration  # noqa: PLC0415

    with apply_configuration(None, **PDF_LIMITS):
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnsupportedDocument("encrypted PDF")
        tree: Any = reader.root_object["/Pages"].get_object()
        declared = tree.get("/Count", 0)
        if isinstance(declared, int) and declared > _MAX_PDF_PAGES:
            raise DocumentTooLarge(f"PDF of {declared} pages: at most {_MAX_PDF_PAGES} are read")
        for number, page in enumerate(reader.pages, start=1):
            meter.check_time()
            text = (page.extract_text() or "").strip()
            shows_image = page_shows_image(page)  # after extract_text: it reads what that inflated
            _forget_decoded_contents(page)
            # Half a UTF-16 pair (a crafted ToUnicode map) could be neither hashed nor written.
            if needs_ocr(text, shows_image=shows_image) or lone_surrogate_at(text) is not None:
                meter.add("pages to read")
                unread.append(number)
            elif text:
                meter.add("pages with text")
                pages.add(text, {"page": number})


def _forget_decoded_contents(page: Any) -> None:
    """pypdf keeps every stream it has inflated for the reader's life: a page's content, read once,
    is let go (a 30 MB PDF of pages that each inflate to 1 MB would otherwise hold them all)."""
    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    for reference in contents if isinstance(contents, list) else [contents]:
        stream: Any = reference.get_object() if reference is not None else None
        if hasattr(stream, "decoded_self"):
            stream.decoded_self = None


def docx_text(data: bytes, limits: Limits) -> ParsedDocument:
    """Paragraphs of the body (w:t text, w:tab and w:br/w:cr), headings from their styles, streamed;
    the container's caps (members, declared and inflated sizes) are zipsafe.py's, as for the other
    Office and OpenDocument formats."""
    body = _DocxBody(limits)
    with open_package(data, "DOCX", limits) as package:
        package.parse("word/document.xml", body)
    return body.paragraphs.document()


class _Paragraph:
    __slots__ = ("depth", "order", "pieces", "style", "text")

    def __init__(self, depth: int, order: int) -> None:
        self.depth = depth  # how many elements are open, this one included
        self.order = order
        self.pieces: list[str] = []
        self.style: str | None = None  # the first pPr/pStyle's w:val
        self.text = ""


class _DocxBody:
    """What ElementTree's `root.find("w:body").iter("w:p")` gave, from expat's events: a paragraph's
    text is that of every w:t inside it (nested paragraphs included, as iter() had it), in order."""

    def __init__(self, limits: Limits) -> None:
        self.paragraphs = TextBuilder("docx", sectioned=False)
        self._meter = Meter(limits, "parsing")
        self._parser = expat.ParserCreate(namespace_separator="}")
        self._parser.buffer_text = True
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._characters
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._names: list[str] = []  # the open elements
        self._in_body = False  # inside the root's first w:body
        self._bodies = 0
        self._paragraphs = 0
        self._open: list[_Paragraph] = []  # nested: the innermost last
        self._done: list[_Paragraph] = []  # closed, waiting for the outermost one to close
        self._text: list[str] | None = None  # a w:t's text, until its first child or its end
        self._buffered = 0

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        self._parser.Parse(chunk, final)
        self._meter.check_time()

    def _doctype(self, *_args: object) -> None:
        raise UnsupportedDocument("DOCX body declares a DTD, which Office Open XML forbids")

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        self._meter.step()
        self._end_text()
        parent = self._names[-1] if self._names else ""
        self._names.append(name)
        depth = len(self._names)
        if depth == 2 and name == _W + "body" and not self._bodies:
            self._bodies, self._in_body = 1, True
        if not self._in_body:
            return
        if name == _W + "p":
            self._paragraphs += 1
            self._open.append(_Paragraph(depth, self._paragraphs))
        elif name == _TEXT and self._open:
            self._text = []
        elif name == _TAB:
            self._add("\t")
        elif name in _BREAKS:
            self._add("\n")
        elif name == _W + "pStyle" and parent == _W + "pPr":
            for paragraph in self._open:
                if paragraph.depth == depth - 2 and paragraph.style is None:
                    paragraph.style = attributes.get(_W + "val") or ""

    def _end(self, name: str) -> None:
        self._end_text()
        depth = len(self._names)
        self._names.pop()
        if depth == 2:
            self._in_body = False
        if name == _W + "p" and self._open and self._open[-1].depth == depth:
            paragraph = self._open.pop()
            paragraph.text = _heading("".join(paragraph.pieces).strip(), paragraph.style)
            paragraph.pieces = []
            self._done.append(paragraph)
            if not self._open:  # in document order, as iter() gave them: outer before inner
                for done in sorted(self._done, key=lambda p: p.order):
                    if has_text(done.text):
                        self.paragraphs.add(done.text)
                self._done = []

    def _characters(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def _end_text(self) -> None:
        if self._text is not None:
            text, self._text = "".join(self._text), None
            self._add(text)

    def _add(self, text: str) -> None:
        if not self._open or not text:
            return
        self._buffered += len(text) * len(self._open)
        if self._buffered > MAX_TEXT_CHARS:
            raise DocumentTooLarge(
                f"the text extracted from this docx document is over {MAX_TEXT_CHARS} characters"
            )
        for paragraph in self._open:
            paragraph.pieces.append(text)
            if len(paragraph.pieces) >= 4096:
                paragraph.pieces = ["".join(paragraph.pieces)]


def _heading(text: str, style: str | None) -> str:
    name = (style or "").lower()
    level = 0
    if name == "title":
        level = 1
    elif name.startswith("heading") and name[7:].isdecimal() and len(name) < 16:  # int() takes these
        level = min(6, max(1, int(name[7:])))
    return f"{'#' * level} {text}" if level and text else text
