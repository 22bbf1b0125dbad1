"""OpenDocument text (.odt) and presentations (.odp), from content.xml, streamed.

Text: headings (text:h, by outline level) as markdown headings, paragraphs, list items as "- " lines
kept together, tables row by row ("cell | cell"), as DOCX and HTML are read. Left out: footnotes and
comments (not in the flow of the text: inline they would cut a sentence), deleted tracked changes.
A presentation is read as a PPTX is (slides.py): one section per page, with `slide` (its position)
in the metadata, the title frame as a heading, the other frames in stored order, then the notes;
page numbers, dates and footers left out; hidden pages read and marked `hidden: true`.
"""

from __future__ import annotations

from collections.abc import Callable

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.model import (
    MAX_TEXT_CHARS,
    Limits,
    Metadata,
    Meter,
    ParsedDocument,
    TextBuilder,
)
from embedding_pipeline.stages.documents.zipsafe import XmlReader, open_package

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_PRESENTATION = "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0}"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0}"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_LEFT_OUT = frozenset(
    {
        _TEXT + "note", _OFFICE + "annotation", _TEXT + "tracked-changes", _OFFICE + "forms",
        _TEXT + "sequence-decls", _TEXT + "variable-decls", _DRAW + "page-thumbnail",
    }
)  # fmt: skip
_LEFT_OUT_FRAMES = frozenset({"page-number", "footer", "header", "date-time", "page"})
_MAX_SPACES = 100  # text:s's text:c: a few bytes could otherwise ask for a billion spaces


def odf_text(data: bytes, limits: Limits, document_format: str) -> ParsedDocument:
    """An ODT's paragraphs, or an ODP's pages as sections; `document_format` is "odt" or "odp"."""
    kind = document_format.upper()
    with open_package(data, kind, limits) as package:
        if package.has("META-INF/manifest.xml") and b"encryption-data" in package.read(
            "META-INF/manifest.xml"
        ):
            raise UnsupportedDocument(f"encrypted {kind} (password-protected)")
        reader = _Content(kind, package.meter, document_format)
        package.parse("content.xml", reader)
    if not reader.out.length:
        raise EmptyDocument(f"{kind} has no text")
    return reader.out.document()


class _Blocks:
    """Paragraphs, list items and table rows into text blocks, delivered to `sink` one at a time."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self._sink = sink
        self._list: list[str] = []  # consecutive list items: one block
        self.lists = 0  # text:list-item open
        self.tables: list[list[list[str]]] = []  # open tables' rows, each row's cells
        self.cell: list[list[str]] = []  # open cells' paragraphs, innermost last

    def paragraph(self, text: str, heading: int) -> None:
        if not text:
            return
        if self.cell:
            self.cell[-1].append(text)
        elif heading:
            self.add(f"{'#' * heading} {text}")
        elif self.lists:
            self._list.append(f"{'  ' * (self.lists - 1)}- {text}")
        else:
            self.add(text)

    def end_cell(self) -> None:
        if self.cell and self.tables and self.tables[-1]:
            self.tables[-1][-1].append(" ".join(self.cell.pop()))

    def end_table(self) -> None:
        rows = [" | ".join(row) for row in self.tables.pop() if any(row)] if self.tables else []
        if rows and self.cell:  # a table in a cell: its rows are that cell's text
            self.paragraph(" / ".join(rows), 0)
        elif rows:
            self.add("\n".join(rows))

    def add(self, block: str) -> None:
        self.flush_list()
        self._sink(block)

    def flush_list(self) -> None:
        """Deliver the list items so far: the list has ended, or its page or its notes have."""
        if self._list:
            self._sink("\n".join(self._list))
            self._list = []


class _Content(XmlReader):
    def __init__(self, kind: str, meter: Meter, document_format: str) -> None:
        super().__init__(kind, meter)
        self.out = TextBuilder(document_format, sectioned=document_format == "odp")
        self._body = _Blocks(self._deliver)
        self._characters = 0
        self._paragraphs: list[tuple[list[str], int]] = []  # open text:p/text:h: pieces, heading level
        self._skipping = 0  # depth of the left-out element open, or 0
        self._hidden_styles: set[str] = set()
        self._style = ""  # the drawing-page style open
        self._page: tuple[int, bool] | None = None  # the open draw:page's number and visibility
        self._pages = 0
        self._frame = ""  # presentation:class of the open frame
        self._title: list[str] = []
        self._blocks: list[str] = []  # the open page's
        self._notes: list[str] | None = None  # inside presentation:notes: its blocks

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if self._skipping:
            return
        if name in _LEFT_OUT or (name == _DRAW + "frame" and self._left_out_frame(attributes)):
            self._skipping = self.depth
        elif name in (_TEXT + "p", _TEXT + "h"):
            level = attributes.get(_TEXT + "outline-level", "1") if name == _TEXT + "h" else "0"
            self._paragraphs.append(([], min(6, int(level)) if level.isdecimal() and len(level) < 4 else 1))
        elif name == _TEXT + "s":
            count = attributes.get(_TEXT + "c", "1")
            self._add(" " * min(_MAX_SPACES, int(count) if count.isdecimal() and len(count) < 6 else 1))
        elif name == _TEXT + "tab":
            self._add("\t")
        elif name == _TEXT + "line-break":
            self._add("\n")
        elif name == _TEXT + "list-item":
            self._body.lists += 1
        elif name == _TABLE + "table":
            self._body.tables.append([])
        elif name == _TABLE + "table-row" and self._body.tables:
            self._body.tables[-1].append([])
        elif name == _TABLE + "table-cell":
            self._body.cell.append([])
        else:
            self._start_presentation(name, attributes)

    def _left_out_frame(self, attributes: dict[str, str]) -> bool:
        self._frame = attributes.get(_PRESENTATION + "class", "")
        return self._frame in _LEFT_OUT_FRAMES

    def _start_presentation(self, name: str, attributes: dict[str, str]) -> None:
        if name == _STYLE + "style" and attributes.get(_STYLE + "family") == "drawing-page":
            self._style = attributes.get(_STYLE + "name", "")
        elif name == _STYLE + "drawing-page-properties":
            if attributes.get(_PRESENTATION + "visibility") == "hidden":
                self._hidden_styles.add(self._style)
        elif name == _DRAW + "page":
            self._pages += 1
            self._page = (self._pages, attributes.get(_DRAW + "style-name", "") in self._hidden_styles)
        elif name == _PRESENTATION + "notes" and self._page is not None:
            self._body.flush_list()
            self._notes = []

    def end(self, name: str) -> None:
        if self._skipping:
            self._skipping = 0 if self.depth == self._skipping else self._skipping
            return
        if name in (_TEXT + "p", _TEXT + "h") and self._paragraphs:
            pieces, level = self._paragraphs.pop()
            self._end_paragraph("".join(pieces).strip(), level)
        elif name == _TEXT + "list-item":
            self._body.lists -= 1
        elif name == _TABLE + "table-cell":
            self._body.end_cell()
        elif name == _TABLE + "table":
            self._body.end_table()
        elif name == _DRAW + "frame":
            self._frame = ""
        elif name == _PRESENTATION + "notes" and self._notes is not None:
            self._body.flush_list()
            if self._notes:
                self._blocks.append("Notes:\n" + "\n\n".join(self._notes))
            self._notes = None
        elif name == _DRAW + "page" and self._page is not None:
            self._body.flush_list()
            self._end_page(*self._page)
        elif name == _OFFICE + "text":
            self._body.flush_list()

    def _end_paragraph(self, text: str, level: int) -> None:
        if self._paragraphs:  # a paragraph inside another (in a frame or a note): its text joins it
            self._add(f" {text} " if text else "")
        elif self._page is not None and self._frame == "title" and self._notes is None:
            if text:
                self._title.append(text)
        else:
            self._body.paragraph(text, level)

    def _deliver(self, block: str) -> None:
        if self._notes is not None:
            self._notes.append(block)
        elif self._page is not None:
            self._blocks.append(block)
        else:
            self.out.add(block)

    def _end_page(self, number: int, hidden: bool) -> None:
        parts = [f"# {' '.join(self._title)}"] if self._title else []
        parts += self._blocks
        self._page, self._title, self._blocks, self._notes = None, [], [], None
        if parts:
            self.meter.add("slides with text")
            metadata: Metadata = {"slide": number, "hidden": True} if hidden else {"slide": number}
            self.out.add("\n\n".join(parts), metadata)

    def text(self, data: str) -> None:
        if not self._skipping:
            self._add(data)

    def _add(self, text: str) -> None:
        if self._paragraphs and text:
            self._characters += len(text)
            if self._characters > MAX_TEXT_CHARS:
                raise DocumentTooLarge(f"the text of this {self.kind} is over {MAX_TEXT_CHARS} characters")
            self._paragraphs[-1][0].append(text)
