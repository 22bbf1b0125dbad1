"""ZIP-packaged documents built in code (PPTX, ODT, ODP, EPUB): minimal valid files for the tests, and
crafted ones (a deck of 10,000 slides, XML nested 100,000 deep, a spine of missing or huge items, a
bomb) for the tests and the benchmark (`bench/formats_slides.py`). No generated binary is committed.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_RT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"

Members = Iterable[tuple[str, bytes | str | Callable[[io.BufferedIOBase], None]]]


def package(members: Members, *, stored_first: str | None = None) -> bytes:
    """A deflated ZIP of `members` (bytes, text, or a callable writing the member's stream); the member
    named `stored_first` (ODF's and EPUB's "mimetype") first and stored, as those formats ask."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for name, content in members:
            compression = zipfile.ZIP_STORED if name == stored_first else zipfile.ZIP_DEFLATED
            if callable(content):
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w") as stream:
                    content(stream)  # type: ignore[arg-type]
            else:
                archive.writestr(name, content, compress_type=compression)
    return buffer.getvalue()


# --- PPTX -----------------------------------------------------------------------------------------


@dataclass
class Slide:
    title: str | None = None
    body: list[list[str]] = field(default_factory=list)  # shapes, each a list of paragraphs
    table: list[list[str]] | None = None
    notes: list[str] | None = None
    hidden: bool = False
    footer: str | None = None  # a slide-number placeholder's text, which the parser leaves out


def _paragraphs(texts: list[str]) -> str:
    return "".join(f"<a:p><a:r><a:t>{escape(text)}</a:t></a:r></a:p>" for text in texts)


def _shape(texts: list[str], placeholder: str | None = None) -> str:
    ph = f'<p:nvPr><p:ph type="{placeholder}"/></p:nvPr>' if placeholder else "<p:nvPr/>"
    return (
        f'<p:sp><p:nvSpPr><p:cNvPr id="2" name="s"/><p:cNvSpPr/>{ph}</p:nvSpPr>'
        f"<p:txBody><a:bodyPr/>{_paragraphs(texts)}</p:txBody></p:sp>"
    )


def _table(rows: list[list[str]]) -> str:
    cells = "".join(
        "<a:tr>" + "".join(f"<a:tc><a:txBody>{_paragraphs([c])}</a:txBody></a:tc>" for c in row) + "</a:tr>"
        for row in rows
    )
    return (
        '<p:graphicFrame><a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/table">'
        f"<a:tbl>{cells}</a:tbl></a:graphicData></a:graphic></p:graphicFrame>"
    )


def slide_xml(slide: Slide, root: str = "sld") -> str:
    shapes = _shape([slide.title], "title") if slide.title else ""
    shapes += "".join(_shape(texts) for texts in slide.body)
    shapes += _table(slide.table) if slide.table else ""
    shapes += _shape([slide.footer], "sldNum") if slide.footer else ""
    show = ' show="0"' if slide.hidden else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<p:{root} xmlns:p="{P_NS}" xmlns:a="{A_NS}" xmlns:r="{R_NS}"{show}>'
        f"<p:cSld><p:spTree>{shapes}</p:spTree></p:cSld></p:{root}>"
    )


def _rels(targets: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<Relationship Id="rId{n}" Type="{_RT}/{kind}" Target="{target}"/>'
        for n, (kind, target) in enumerate(targets, start=1)
    )
    return f'<?xml version="1.0"?><Relationships xmlns="{REL_NS}">{items}</Relationships>'


def pptx(slides: list[Slide], *, order: list[int] | None = None) -> bytes:
    """A deck: slide N is ppt/slides/slideN.xml; `order` lists slide indexes in presentation order."""
    order = list(range(len(slides))) if order is None else order

    def members() -> Members:
        ids = "".join(f'<p:sldId id="{256 + n}" r:id="rId{n + 1}"/>' for n in order)
        yield "[Content_Types].xml", "<Types/>"
        yield (
            "ppt/presentation.xml",
            f'<?xml version="1.0"?><p:presentation xmlns:p="{P_NS}" xmlns:r="{R_NS}">'
            f"<p:sldIdLst>{ids}</p:sldIdLst></p:presentation>",
        )
        yield (
            "ppt/_rels/presentation.xml.rels",
            _rels([("slide", f"slides/slide{n + 1}.xml") for n in range(len(slides))]),
        )
        for n, slide in enumerate(slides, start=1):
            yield f"ppt/slides/slide{n}.xml", slide_xml(slide)
            targets = [("slideLayout", "../slideLayouts/slideLayout1.xml")]
            if slide.notes is not None:
                targets.append(("notesSlide", f"../notesSlides/notesSlide{n}.xml"))
                notes = Slide(body=[slide.notes], footer=str(n))
                yield f"ppt/notesSlides/notesSlide{n}.xml", slide_xml(notes, root="notes")
            yield f"ppt/slides/_rels/slide{n}.xml.rels", _rels(targets)

    return package(members())


def pptx_many_slides(count: int) -> bytes:
    """`count` slides, each a title, two bullets and a line of notes."""
    return pptx(
        [
            Slide(
                f"Slide {n}", [[f"Point {n}.1 of the deck", f"Point {n}.2 of the deck"]], notes=[f"Say {n}"]
            )
            for n in range(count)
        ]
    )


# --- OpenDocument ---------------------------------------------------------------------------------

ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
    'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0"'
)
ODT_MIME = "application/vnd.oasis.opendocument.text"
ODP_MIME = "application/vnd.oasis.opendocument.presentation"


def odf(mimetype: str, body: str | Callable[[io.BufferedIOBase], None], styles: str = "") -> bytes:
    """An ODF package whose content.xml holds `body` inside office:body (or is what the callable writes)."""
    content: str | Callable[[io.BufferedIOBase], None] = body
    if isinstance(body, str):
        content = (
            f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODF_NS}>'
            f"<office:automatic-styles>{styles}</office:automatic-styles>"
            f"<office:body>{body}</office:body></office:document-content>"
        )
    return package(
        [("mimetype", mimetype), ("META-INF/manifest.xml", "<manifest/>"), ("content.xml", content)],
        stored_first="mimetype",
    )


def odt_deeply_nested(depth: int) -> bytes:
    """A text whose one paragraph sits inside `depth` nested spans."""
    inner = "<text:span>" * depth + "deep" + "</text:span>" * depth
    return odf(ODT_MIME, f"<office:text><text:p>{inner}</text:p></office:text>")


# --- EPUB -----------------------------------------------------------------------------------------

CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
    '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)


def chapter(title: str | None, paragraphs: list[str]) -> str:
    heading = f"<h1>{escape(title)}</h1>" if title else ""
    body = "".join(f"<p>{escape(text)}</p>" for text in paragraphs)
    return (
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>Book</title></head><body>{heading}{body}</body></html>"
    )


def epub(
    chapters: list[tuple[str, str | bytes | Callable[[io.BufferedIOBase], None]]],
    *,
    spine: list[str] | None = None,
    toc: dict[str, str] | None = None,
    opf: str | None = None,
) -> bytes:
    """A book of (href under OEBPS/, XHTML) chapters; `spine` lists hrefs in reading order (default: as
    given, any href allowed, missing ones too); `toc` maps hrefs to titles in an EPUB 3 nav document."""
    hrefs = [href for href, _ in chapters]
    spine = hrefs if spine is None else spine
    ids = {href: f"item{n}" for n, href in enumerate(dict.fromkeys([*hrefs, *spine]))}
    manifest = "".join(
        f'<item id="{ids[href]}" href="{href}" media-type="application/xhtml+xml"/>' for href in ids
    )
    nav = ""
    members: list[tuple[str, bytes | str | Callable[[io.BufferedIOBase], None]]] = [
        ("mimetype", "application/epub+zip"),
        ("META-INF/container.xml", CONTAINER),
    ]
    if toc is not None:
        nav = '<item id="nav" href="nav.xhtml" properties="nav" media-type="application/xhtml+xml"/>'
        links = "".join(f'<li><a href="{href}">{escape(title)}</a></li>' for href, title in toc.items())
        members.append(
            (
                "OEBPS/nav.xhtml",
                '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml" '
                'xmlns:epub="http://www.idpf.org/2007/ops"><body>'
                f'<nav epub:type="toc"><ol>{links}</ol></nav></body></html>',
            )
        )
    itemrefs = "".join(f'<itemref idref="{ids[href]}"/>' for href in spine)
    members.append(
        (
            "OEBPS/content.opf",
            opf
            or (
                '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                f"<metadata/><manifest>{manifest}{nav}</manifest><spine>{itemrefs}</spine></package>"
            ),
        )
    )
    members += [(f"OEBPS/{href}", content) for href, content in chapters]
    return package(members, stored_first="mimetype")


# --- Bombs ----------------------------------------------------------------------------------------


def zero_filled(size: int) -> Callable[[io.BufferedIOBase], None]:
    """A member's writer: `size` zero bytes, which deflate a thousandfold."""

    def write(stream: io.BufferedIOBase) -> None:
        block = b"\0" * 1_000_000
        for _ in range(size // len(block)):
            stream.write(block)

    return write


def odt_paragraphs(xml_size: int) -> bytes:
    """A text of numbered short paragraphs, a heading every 20, about `xml_size` bytes of XML."""

    def write(stream: io.BufferedIOBase) -> None:
        stream.write(f"<office:document-content {ODF_NS}><office:body><office:text>".encode())
        written, number = 0, 0
        while written < xml_size:
            heading = f'<text:h text:outline-level="2">Part {number}</text:h>' if not number % 20 else ""
            text = f"Paragraph {number} of the text, <text:span>with a span</text:span>."
            item = f"{heading}<text:p>{text}</text:p>"
            written += stream.write(item.encode())
            number += 1
        stream.write(b"</office:text></office:body></office:document-content>")

    return odf(ODT_MIME, write)


def epub_of_size(xml_size: int, chapters: int = 200) -> bytes:
    """A book of `chapters` chapters of numbered paragraphs, about `xml_size` bytes of XHTML in all."""
    each = max(1, xml_size // chapters // 40)
    return epub(
        [
            (f"c{n}.xhtml", chapter(f"Chapter {n}", [f"Line {i} of {n}." for i in range(each)]))
            for n in range(chapters)
        ]
    )
