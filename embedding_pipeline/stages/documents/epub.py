"""EPUB books: chapters in reading order, each a section with `chapter` (its position in the spine)
and `href` (its file in the book) in the metadata.

META-INF/container.xml names the package document (OPF); its spine lists the chapters in reading
order (items marked linear="no", such as end notes, are read too, where the spine puts them); each
XHTML chapter goes through the HTML extractor (htmltext.py: its headings become markdown headings).
A chapter that does not start with a heading gets its title from the table of contents (the EPUB 3
nav document, else the EPUB 2 NCX) as one. Every chapter named must be in the book, and all of them
together within zipsafe.py's XML cap (a spine naming one file 10,000 times counts it 10,000 times),
checked before any is read. Chapters encrypted (DRM) are refused; obfuscated fonts are no matter.
"""

from __future__ import annotations

from urllib.parse import unquote

from embedding_pipeline.errors import DocumentTooLarge, EmptyDocument, UnsupportedDocument
from embedding_pipeline.stages.documents.decoding import decode_text
from embedding_pipeline.stages.documents.htmltext import html_to_text
from embedding_pipeline.stages.documents.model import Limits, Meter, ParsedDocument, TextBuilder, has_text
from embedding_pipeline.stages.documents.zipsafe import Package, XmlReader, open_package, resolve

MAX_CHAPTERS = 10_000
_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_READABLE = frozenset({"application/xhtml+xml", "text/html", ""})


def epub_chapters(data: bytes, limits: Limits) -> ParsedDocument:
    chapters = TextBuilder("epub", sectioned=True)
    with open_package(data, "EPUB", limits) as package:
        opf = _rootfile(package)
        book = _Elements(package.meter, ("item", "itemref", "spine"))
        package.parse(opf, book)
        members = _spine(book, opf)
        missing = next((member for member in members if not package.has(member)), None)
        if missing is not None:
            raise UnsupportedDocument(f"broken EPUB: the spine names {missing}, which the book lacks")
        package.reserve(members)
        _refuse_encrypted(package, set(members))
        titles = _toc(package, book, opf)
        for number, member in enumerate(members, start=1):
            text = html_to_text(decode_text(package.read(member)), limits).text
            if not has_text(text):
                continue
            title = titles.get(member)
            if title and not text.startswith("#"):
                text = f"# {title}\n\n{text}"
            package.meter.add("chapters with text")
            chapters.add(text, {"chapter": number, "href": member})
    if not chapters.length:
        raise EmptyDocument("EPUB has no text in its chapters")
    return chapters.document()


def _rootfile(package: Package) -> str:
    container = _Elements(package.meter, ("rootfile",))
    package.parse(_CONTAINER, container)
    for _, attributes, _ in container.found:
        path = resolve("", unquote(attributes.get("full-path", "")))
        if path:
            return path
    raise UnsupportedDocument("broken EPUB: META-INF/container.xml names no package document")


def _spine(book: _Elements, opf: str) -> list[str]:
    """The spine's XHTML items, as member names, in reading order."""
    items = {a.get("id", ""): a for name, a, _ in book.found if name == "item"}
    idrefs = [a.get("idref", "") for name, a, _ in book.found if name == "itemref"]
    if len(idrefs) > MAX_CHAPTERS:
        raise DocumentTooLarge(f"EPUB of {len(idrefs)} spine items: at most {MAX_CHAPTERS} are read")
    members = []
    for idref in idrefs:
        item = items.get(idref)
        if item is None:
            raise UnsupportedDocument(f"broken EPUB: spine item {idref[:100]!r} is not in the manifest")
        if item.get("media-type", "") in _READABLE:
            members.append(resolve(opf, unquote(item.get("href", ""))))
    return members


def _refuse_encrypted(package: Package, members: set[str]) -> None:
    if not package.has(_ENCRYPTION):
        return
    encryption = _Elements(package.meter, ("CipherReference",))
    package.parse(_ENCRYPTION, encryption)
    if any(resolve("", unquote(a.get("URI", ""))) in members for _, a, _ in encryption.found):
        raise UnsupportedDocument("EPUB with encrypted chapters (DRM): its text cannot be read")


def _toc(package: Package, book: _Elements, opf: str) -> dict[str, str]:
    """Chapter titles by member name: from the EPUB 3 nav document, else the EPUB 2 NCX."""
    items = {a.get("id", ""): a for name, a, _ in book.found if name == "item"}
    spine = next((a for name, a, _ in book.found if name == "spine"), {})
    nav = next((a for a in items.values() if "nav" in a.get("properties", "").split()), None)
    source = nav or items.get(spine.get("toc", ""))
    if source is None:
        return {}
    path = resolve(opf, unquote(source.get("href", "")))
    if not package.has(path):
        return {}
    links = _Elements(package.meter, ("a", "text", "content"))
    package.parse(path, links)
    titles: dict[str, str] = {}
    label = ""
    for name, attributes, text in links.found:
        if name == "text":  # NCX: a navLabel's text, then its content's src
            label = text
        target = attributes.get("href" if name == "a" else "src")
        title = text if name == "a" else label
        if target and title:
            titles.setdefault(resolve(path, unquote(target)), " ".join(title.split()))
    return titles


class _Elements(XmlReader):
    """Elements of the given local names, in order, each with its attributes (local names too) and
    its text. A DOCTYPE is allowed (EPUB 2's NCX and XHTML carry one), an internal subset is not."""

    def __init__(self, meter: Meter, names: tuple[str, ...]) -> None:
        super().__init__("EPUB", meter, doctype=True)
        self.found: list[tuple[str, dict[str, str], str]] = []
        self._names = names
        self._open: list[tuple[int, list[str]]] = []  # elements found and open: depth, text

    def start(self, name: str, attributes: dict[str, str]) -> None:
        local = name.rpartition("}")[2]
        if local in self._names:
            if len(self.found) > 4 * MAX_CHAPTERS:
                raise DocumentTooLarge(f"EPUB lists over {4 * MAX_CHAPTERS} {local} elements")
            self.found.append((local, {n.rpartition("}")[2]: v for n, v in attributes.items()}, ""))
            self._open.append((len(self.found) - 1, []))

    def end(self, name: str) -> None:
        if self._open and name.rpartition("}")[2] in self._names:
            at, pieces = self._open.pop()
            local, attributes, _ = self.found[at]
            self.found[at] = (local, attributes, "".join(pieces)[:1000])

    def text(self, data: str) -> None:
        if self._open and sum(len(p) for p in self._open[-1][1]) < 1000:
            self._open[-1][1].append(data)
