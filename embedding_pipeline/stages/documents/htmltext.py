"""HTML to text: blocks become paragraphs, h1-h6 become markdown headings, scripts and styles go.

A small tokenizer of its own rather than html.parser, whose time is quadratic in crafted input (50 KB
of "<a " took 33 s, and a megabyte of it hours, in one call no deadline can interrupt). Here every
construct is found by one forward search; one that never ends (a tag or comment open at the end of
the file) ends the document, as it does in a browser. On well-formed HTML the text is html.parser's.
"""

from __future__ import annotations

import html
import re

from embedding_pipeline.stages.documents.model import Limits, Meter, ParsedDocument, TextBuilder

_SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})
_RAW_TEXT = frozenset({"script", "style"})  # their content is not HTML: it ends at the closing tag
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote",
        "pre", "table", "tr", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "form", "br", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "title", "body", "html",
    }
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_TAG_NAME = re.compile(r"[a-zA-Z][^\t\n\r\f />\x00]*")
# The rest of a start tag: attributes, a quoted value (which may hold ">") only right after "=".
_TAG_REST = re.compile(r"""(?:[^>=]++|=[ \t\n\r\f]*+(?:"[^"]*+"|'[^']*+')?+)*+>""")
_COMMENT_END = re.compile(r"--\s*>")
_SPACE_RUN = re.compile(r"\s*")
_RAW_TEXT_END = {tag: re.compile(rf"</\s*{tag}\s*>", re.IGNORECASE) for tag in _RAW_TEXT}


class _TextExtractor:
    def __init__(self, limits: Limits) -> None:
        self.paragraphs = TextBuilder("html", sectioned=False)
        self.meter = Meter(limits, "parsing")
        self._pending = ""  # the last block: list items that follow it are joined to it
        self._current: list[str] = []
        self._skipping = 0
        self._prefix = ""

    def _close_block(self) -> None:
        text = _SPACES.sub(" ", "".join(self._current)).strip()
        if text:
            block = self._prefix + text
            # List items stay together as one paragraph; other blocks are separated by a blank line.
            if self._pending.startswith("- ") and block.startswith("- "):
                self._pending += "\n" + block
            else:
                self.flush()
                self._pending = block
        self._current = []
        self._prefix = ""

    def flush(self) -> None:
        if self._pending:
            self.paragraphs.add(self._pending)
            self._pending = ""

    def start(self, tag: str) -> None:
        self.meter.step()
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCKS:
            self._close_block()
            if tag in _HEADINGS:
                self._prefix = "#" * _HEADINGS[tag] + " "
            elif tag == "li":
                self._prefix = "- "

    def end(self, tag: str) -> None:
        self.meter.step()
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self._close_block()

    def data(self, text: str) -> None:
        if not self._skipping and text:
            self._current.append(html.unescape(text).replace("\n", " "))


def html_to_text(source: str, limits: Limits = Limits()) -> ParsedDocument:  # noqa: B008 (frozen)
    extractor = _TextExtractor(limits)
    _tokenize(source, extractor)
    extractor._close_block()
    extractor.flush()
    return extractor.paragraphs.document()


def _tokenize(source: str, out: _TextExtractor) -> None:  # noqa: PLR0912 (a branch per construct)
    """Feed `out` the document's tags and text, in one pass: each search starts where the last ended."""
    position, length = 0, len(source)
    while position < length:
        opening = source.find("<", position)
        if opening < 0:
            out.data(source[position:])
            return
        out.data(source[position:opening])
        after = opening + 1
        if source.startswith("!--", after):
            found = _COMMENT_END.search(source, opening + 4)
            position = found.end() if found is not None else length
        elif source.startswith("![CDATA[", after):
            end = source.find("]]>", after)
            position = end + 3 if end >= 0 else length
        elif source.startswith(("!", "?"), after):  # a declaration, a processing instruction
            position = _past(source, ">", after)
        elif source.startswith("/", after):
            spaces = _SPACE_RUN.match(source, after + 1)
            name = _TAG_NAME.match(source, spaces.end() if spaces is not None else after + 1)
            if name is not None:
                out.end(name.group().lower())
            elif source.startswith("/>", after):
                position = after + 2
                continue
            position = _past(source, ">", after)
        elif (name := _TAG_NAME.match(source, after)) is not None:
            rest = _TAG_REST.match(source, name.end())
            if rest is None:  # a tag open at the end of the file: the rest is inside it
                return
            tag = name.group().lower()
            out.start(tag)
            position = rest.end()
            if source.startswith("/>", position - 2):
                out.end(tag)
            elif tag in _RAW_TEXT:
                closing = _RAW_TEXT_END[tag].search(source, position)
                if closing is None:
                    return
                out.end(tag)
                position = closing.end()
        else:
            out.data("<")
            position = after


def _past(source: str, mark: str, start: int) -> int:
    end = source.find(mark, start)
    return end + len(mark) if end >= 0 else len(source)
