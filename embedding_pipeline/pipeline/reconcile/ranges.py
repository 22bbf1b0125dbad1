"""Key ranges: a page of documents, and where their outputs lie in each output area.

A page is the documents `d` with `prefix <= d`, `after < d <= through` (in Object Storage's order,
UTF-8 bytes, which Python's `str` order matches). Its outputs in an area are `{area}{d}{suffix}`,
and they lie in the area's range `({area}{after}, {area}{through}{last suffix}]` with two kinds of
exception, both from one document's key being a prefix of another's:

- a *spill*: a document `p` of the page that is a proper prefix of `through` can have outputs past
  the range's end (`incoming/x` with `through` = `incoming/x-1`: `incoming/x.jsonl` sorts after
  `incoming/x-1.manifest.json`). There are at most as many such `p` as `through` has characters,
  and which they are follows from the strings alone: the page reads them by name (`spills`).
- a *stray*: an output inside the range whose document lies outside the page: an earlier page's
  spill, read there by name, or a later page's document (`incoming/x-1` when `through` =
  `incoming/x`). The page ignores it; its own page sees it.

Checkpoints are folders (`{area}{d}/{part}`) with names that vary, so they cannot be read by name:
a checkpoint that spills is a stray of a later page, which asks whether its document exists.

"Order" is the server's. Amazon S3 (and Object Storage) lists keys in UTF-8 byte order; SeaweedFS,
a tree of folders, lists each folder's entries by name, so `x/y.md` comes before `x-1` (as if `/`
sorted before every other character), and its `start-after` skips the folder named by it unless
given with a trailing `/`. Both are lexicographic orders over a relabelling of characters, so
every argument above holds in either; `KeyOrder` is which one (order.py finds it out), and every
comparison here goes through it. Judging a page in the wrong order would make a later page's
document look like an orphan of this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from embedding_pipeline.outputs.layout import OutputArea

OrderName = Literal["bytes", "slash-first"]


@dataclass(frozen=True, slots=True)
class KeyOrder:
    """The order a server lists keys in: what to compare, and what `start-after` to send for
    "every key after this one"."""

    name: OrderName
    key: Callable[[str], str]
    start_after: Callable[[str], str]

    def first(self, keys: list[str]) -> str:
        return min(keys, key=self.key)

    def last(self, keys: list[str]) -> str:
        return max(keys, key=self.key)


def _slash_first(key: str) -> str:
    # Keys hold no control characters (layout.validate_source_key refuses them): \x01 sorts first.
    return key.replace("/", "\x01")


BYTES = KeyOrder("bytes", lambda key: key, lambda key: key)  # str order is UTF-8 byte order
SLASH_FIRST = KeyOrder("slash-first", _slash_first, lambda key: key + "/")
ORDERS: dict[OrderName, KeyOrder] = {order.name: order for order in (BYTES, SLASH_FIRST)}


@dataclass(frozen=True, slots=True)
class KeyRange:
    """The documents `d` with `d.startswith(prefix)` and `after < d <= through` (None: unbounded),
    in `order`."""

    prefix: str
    after: str | None = None
    through: str | None = None
    order: KeyOrder = field(default=BYTES, compare=False)

    def holds(self, document: str) -> bool:
        key = self.order.key
        return (
            document.startswith(self.prefix)
            and (self.after is None or key(document) > key(self.after))
            and (self.through is None or key(document) <= key(self.through))
        )

    def listing(self, area: OutputArea) -> AreaListing:
        """What to list in `area` to see the outputs of these documents (spills apart)."""
        start = None if self.after is None else area.prefix + self.after
        stop = None if self.through is None else area.last_key(self.through)
        return AreaListing(area.prefix + self.prefix, start, stop, self.order)

    def spills(self, area: OutputArea) -> list[str]:
        """Documents of this range whose outputs in `area` can lie past its listing's end: proper
        prefixes of `through`, each to be read by name. None for a folder area (see the module)."""
        if self.through is None or area.folder:
            return []
        key = self.order.key
        stop = key(area.last_key(self.through))
        found = []
        for length in range(len(self.prefix), len(self.through)):
            document = self.through[:length]
            if not document or not self.holds(document):
                continue
            if any(key(output) > stop for output in area.keys(document)):
                found.append(document)
        return found


@dataclass(frozen=True, slots=True)
class AreaListing:
    """Keys under `prefix`, after `start_after` (None: from the first) and up to `stop` inclusive
    (None: to the last), in `order`."""

    prefix: str
    start_after: str | None
    stop: str | None
    order: KeyOrder = field(default=BYTES, compare=False)

    def past_end(self, key: str) -> bool:
        return self.stop is not None and self.order.key(key) > self.order.key(self.stop)

    @property
    def start_after_param(self) -> str | None:
        """What to send as `start-after`."""
        return None if self.start_after is None else self.order.start_after(self.start_after)
