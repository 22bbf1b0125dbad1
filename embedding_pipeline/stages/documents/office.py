"""PDF (pypdf, the text layer) and DOCX (zipfile + ElementTree; python-docx would pull in lxml)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile

from embedding_pipeline.errors import EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.model import Metadata

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_XML_LIMIT = 50 * 1024 * 1024


def pdf_pages(data: bytes) -> list[tuple[str, Metadata]]:
    # Imported here: only PDFs need pypdf, and importing it costs cold-start time on every instance.
    from pypdf import PdfReader  # noqa: PLC0415
    from pypdf.errors import PdfReadError  # noqa: PLC0415

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise UnsupportedDocument("encrypted PDF")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnsupportedDocument(f"broken PDF ({type(exc).__name__})") from None
    parts: list[tuple[str, Metadata]] = [(text, {"page": n}) for n, text in enumerate(pages, start=1) if text]
    if not parts:
        raise EmptyDocument("PDF has no text layer (scanned images need OCR first)")
    return parts


def docx_text(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("word/document.xml")
            if info.file_size > _DOCX_XML_LIMIT:
                raise UnsupportedDocument("DOCX body is larger than 50 MB uncompressed")
            root = ET.fromstring(archive.read(info))  # noqa: S314
    except (zipfile.BadZipFile, KeyError, ET.ParseError) as exc:
        raise UnsupportedDocument(f"broken DOCX ({type(exc).__name__})") from None
    body = root.find(_W + "body")
    paragraphs = [_paragraph(p) for p in (body.iter(_W + "p") if body is not None else ())]
    return "\n\n".join(text for text in paragraphs if text.strip())


def _paragraph(paragraph: ET.Element) -> str:
    pieces: list[str] = []
    for node in paragraph.iter():
        if node.tag == _W + "t":
            pieces.append(node.text or "")
        elif node.tag == _W + "tab":
            pieces.append("\t")
        elif node.tag in (_W + "br", _W + "cr"):
            pieces.append("\n")
    text = "".join(pieces).strip()
    level = _heading_level(paragraph)
    return f"{'#' * level} {text}" if level and text else text


def _heading_level(paragraph: ET.Element) -> int:
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    name = (style.get(_W + "val") or "") if style is not None else ""
    if name.lower() == "title":
        return 1
    if name.lower().startswith("heading") and name[7:].isdigit():
        return min(6, max(1, int(name[7:])))
    return 0
