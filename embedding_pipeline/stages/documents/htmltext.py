"""HTML to text with the stdlib parser: blocks become paragraphs, h1-h6 become markdown headings."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe"})
_BLOCKS = frozenset(
    {
        "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "blockquote",
        "pre", "table", "tr", "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "form", "br", "hr",
        "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "title", "body", "html",
    }
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skipping = 0
        self._prefix = ""

    def _close_block(self) -> None:
        text = _SPACES.sub(" ", "".join(self._current)).strip()
        if text:
            self.blocks.append(self._prefix + text)
        self._current = []
        self._prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        elif tag in _BLOCKS:
            self._close_block()
            if tag in _HEADINGS:
                self._prefix = "#" * _HEADINGS[tag] + " "
            elif tag == "li":
                self._prefix = "- "

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BLOCKS:
            self._close_block()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._current.append(data.replace("\n", " "))


def html_to_text(source: str) -> str:
    parser = _TextExtractor()
    parser.feed(source)
    parser.close()
    parser._close_block()
    # List items stay together as one paragraph; other blocks are separated by a blank line.
    out: list[str] = []
    for block in parser.blocks:
        if out and block.startswith("- ") and out[-1].startswith("- "):
            out[-1] += "\n" + block
        else:
            out.append(block)
    return "\n\n".join(out)
