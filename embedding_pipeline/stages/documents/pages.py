"""A document's pages put back together once OCR has read the ones its text layer could not give."""

from __future__ import annotations

from embedding_pipeline.stages.documents.model import Metadata, ParsedDocument, TextBuilder, has_text


def with_recognised_pages(document: ParsedDocument, recognised: dict[int, str]) -> ParsedDocument:
    """`document` with the text of its unread pages that `recognised` holds, every page in order,
    one section each: the page's number in its metadata (and `ocr: true` on the recognised ones),
    so each chunk's provenance says where it came from. Blank recognitions add nothing."""
    pieces: list[tuple[int, str, Metadata]] = []
    for section in document.sections:
        page = section.metadata.get("page")
        order = page if isinstance(page, int) else 0
        pieces.append((order, document.text[section.start : section.end], section.metadata))
    for page in document.unread_pages:
        text = recognised.get(page, "").strip()
        if has_text(text):
            pieces.append((page, text, {"page": page, "ocr": True}))
    pieces.sort(key=lambda piece: piece[0])  # stable: a page's own sections keep their order
    builder = TextBuilder(document.format, sectioned=True)
    for _page, text, metadata in pieces:
        builder.add(text, metadata)
    return builder.document()
