"""PowerPoint (.pptx): one section per slide, in the presentation's order, with `slide` (its number,
as PowerPoint shows it) in the section's metadata.

A slide's text is its title as a heading, then every other shape's paragraphs in the order the slide
stores its shapes (the order of PowerPoint's selection pane and of screen readers: what the author
arranged, not a guess from coordinates), tables row by row ("cell | cell"), then its speaker notes
after a "Notes:" line. Slide numbers, dates and footers (repeated on every slide) are left out.
Hidden slides are read, and say `hidden: true`: they are often backup or appendix slides whose text
someone searching the deck wants, and the flag lets a search filter them out.
"""

from __future__ import annotations

import posixpath

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument
from embedding_pipeline.stages.documents.model import (
    MAX_TEXT_CHARS,
    Limits,
    Metadata,
    Meter,
    ParsedDocument,
    TextBuilder,
    has_text,
)
from embedding_pipeline.stages.documents.zipsafe import Package, XmlReader, open_package, resolve

MAX_SLIDES = 10_000  # as PDF pages (office.py): ~40,000 parts with their notes and relationships
_P = "http://schemas.openxmlformats.org/presentationml/2006/main}"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main}"
_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_RELATIONSHIP = "http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_PRESENTATION = "ppt/presentation.xml"
_TITLES = frozenset({"title", "ctrTitle"})
_LEFT_OUT = frozenset({"sldNum", "dt", "ftr", "hdr", "sldImg"})  # placeholders that repeat, or hold none


def pptx_slides(data: bytes, limits: Limits) -> ParsedDocument:
    slides = TextBuilder("pptx", sectioned=True)
    with open_package(data, "PPTX", limits) as package:
        parts = _slide_parts(package)
        package.reserve([*parts, *(_relationships_of(part) for part in parts)])
        for number, part in enumerate(parts, start=1):
            slide = _SlideText(package.meter)
            package.parse(part, slide)
            notes = _notes_part(package, part)
            if notes:
                notes_text = _SlideText(package.meter)
                package.parse(notes, notes_text)
                slide.notes = notes_text.blocks
            text = slide.render()
            if has_text(text):
                package.meter.add("slides with text")
                metadata: Metadata = {"slide": number, "hidden": True} if slide.hidden else {"slide": number}
                slides.add(text, metadata)
    if not slides.length:
        raise EmptyDocument("PPTX has no text on its slides")
    return slides.document()


def _slide_parts(package: Package) -> list[str]:
    """The slides' part names in the presentation's order (p:sldIdLst), each through its relationship."""
    presentation = _SlideList(package.meter)
    package.parse(_PRESENTATION, presentation)
    if len(presentation.ids) > MAX_SLIDES:
        raise DocumentTooLarge(f"PPTX of {len(presentation.ids)} slides: at most {MAX_SLIDES} are read")
    targets = _targets(package, _PRESENTATION)
    return [resolve(_PRESENTATION, targets[i][1]) for i in presentation.ids if i in targets]


def _notes_part(package: Package, slide: str) -> str | None:
    for kind, target in _targets(package, slide).values():
        if kind.endswith("/notesSlide"):
            return resolve(slide, target)
    return None


def _relationships_of(part: str) -> str:
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def _targets(package: Package, part: str) -> dict[str, tuple[str, str]]:
    """A part's internal relationships: id → (type, target)."""
    name = _relationships_of(part)
    if not package.has(name):
        return {}
    relationships = _Relationships(package.meter)
    package.parse(name, relationships)
    return relationships.targets


class _Relationships(XmlReader):
    def __init__(self, meter: Meter) -> None:
        super().__init__("PPTX", meter)
        self.targets: dict[str, tuple[str, str]] = {}

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _RELATIONSHIP and attributes.get("TargetMode") != "External":
            self.targets[attributes.get("Id", "")] = (
                attributes.get("Type", ""),
                attributes.get("Target", ""),
            )


class _SlideList(XmlReader):
    def __init__(self, meter: Meter) -> None:
        super().__init__("PPTX", meter)
        self.ids: list[str] = []

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if name == _P + "sldId":
            self.ids.append(attributes.get(_R + "id", ""))


class _SlideText(XmlReader):
    """A slide's (or a notes page's) title and text blocks: a shape's paragraphs, a table's rows."""

    def __init__(self, meter: Meter) -> None:
        super().__init__("PPTX", meter)
        self.hidden = False
        self.title: list[str] = []
        self.blocks: list[str] = []
        self.notes: list[str] = []
        self._placeholder: str | None = None  # of the shape (p:sp) open, "" for none
        self._shape: list[str] | None = None  # the open shape's paragraphs
        self._table: list[str] | None = None
        self._row: list[str] = []
        self._cell: list[str] | None = None
        self._paragraph: list[str] | None = None
        self._in_text = False
        self._characters = 0

    def render(self) -> str:
        parts = [f"# {' '.join(self.title)}"] if self.title else []
        parts += self.blocks
        if self.notes:
            parts.append("Notes:\n" + "\n\n".join(self.notes))
        return "\n\n".join(parts)

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if self.depth == 1:
            self.hidden = attributes.get("show") in ("0", "false")
        elif name == _P + "sp":
            self._placeholder, self._shape = "", []
        elif name == _P + "ph" and self._placeholder is not None:
            self._placeholder = attributes.get("type", "obj")
        elif name == _A + "tbl" and self._table is None:
            self._table = []
        elif name == _A + "tr":
            self._row = []
        elif name == _A + "tc":
            self._cell = []
        elif name == _A + "p":
            self._paragraph = []
        elif name == _A + "t":
            self._in_text = True
        elif name == _A + "br" and self._paragraph is not None:
            self._paragraph.append("\n")

    def end(self, name: str) -> None:
        if name == _A + "t":
            self._in_text = False
        elif name == _A + "p" and self._paragraph is not None:
            self._end_paragraph("".join(self._paragraph).strip())
        elif name == _A + "tc" and self._cell is not None:
            self._row.append(" ".join(self._cell))
            self._cell = None
        elif name == _A + "tr" and self._table is not None and any(self._row):
            self._table.append(" | ".join(self._row))
        elif name == _A + "tbl" and self._table is not None:
            if self._table:
                self.blocks.append("\n".join(self._table))
            self._table = None
        elif name == _P + "sp" and self._shape is not None:
            if self._placeholder in _TITLES and not self.title:
                self.title = self._shape
            elif self._shape and self._placeholder not in _LEFT_OUT:
                self.blocks.append("\n".join(self._shape))
            self._placeholder = self._shape = None

    def text(self, data: str) -> None:
        if self._in_text and self._paragraph is not None:
            self._characters += len(data)
            if self._characters > MAX_TEXT_CHARS:
                raise DocumentTooLarge(f"a PPTX slide holds over {MAX_TEXT_CHARS} characters")
            self._paragraph.append(data)

    def _end_paragraph(self, text: str) -> None:
        self._paragraph = None
        if not text:
            return
        if self._cell is not None:
            self._cell.append(text)
        elif self._shape is not None:
            self._shape.append(text)
        else:
            self.blocks.append(text)
