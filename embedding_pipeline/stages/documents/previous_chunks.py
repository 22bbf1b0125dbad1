"""The chunks of the records a re-upload replaces, looked up while the new text is chunked.

A re-upload keeps every previous chunk whose text is still in the document, whole units at
whole-unit boundaries (chunking.py packs only the gaps between them): `PreviousChunks` answers
which previous chunk, if any, starts at the unit ahead and how many units it spans; `Window` holds
the units ahead of the chunker, as far as a chunk can reach.
"""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from collections.abc import Callable, Iterator

from embedding_pipeline.stages.documents.units import Unit

_PREFIX_CHARS = 48  # previous chunks are looked up by their first characters, then checked whole
_CANDIDATES = 32  # previous chunks kept per opening: more that open alike are chunked afresh
_DIGEST_BYTES = 32  # a SHA-256
_EMPTY = -1  # a free slot of PreviousChunks' index


class PreviousChunks:
    """The chunks of the records a re-upload replaces, by what can be looked up cheaply: the hash of
    each one's first characters, its length and its text hash. No texts are kept (a 20 MB
    document's would double the memory of the run): a span of the new text that opens the same and
    is as long is hashed and compared.

    The table is held while the new text is chunked, when a run's memory peaks, so it is made of
    flat arrays, some 55 bytes a chunk, not of Python objects: a dict of tuples and a set of hex strings
    took 400 bytes a chunk (4.5 MB for a 20 MB document), and being made one record at a time
    among the parsed records' garbage, they kept that garbage's memory from going back as well.
    Rows are found by an open-addressing index of their openings' hashes, grown as rows come: no
    step ever makes an object per row."""

    def __init__(self, digest: Callable[[str], str]) -> None:
        self._digest = digest  # a hex SHA-256, as content_hash gives
        self._openings: array[int] = array("q")  # hash(text[:_PREFIX_CHARS]), consistent in-process
        self._lengths: array[int] = array("i")
        self._digests = bytearray()  # the text hashes, _DIGEST_BYTES a row
        self._index: array[int] = array("i", [_EMPTY]) * 64  # rows by opening; a power of two long
        self._indexed = 0

    def add(self, text: str, text_hash: str) -> None:
        """ValueError if `text_hash` is no hex SHA-256 (a damaged record)."""
        if not text:
            return
        digest = bytes.fromhex(text_hash)
        if len(digest) != _DIGEST_BYTES:
            raise ValueError(f"not a SHA-256: {text_hash!r}")
        opening = hash(text[:_PREFIX_CHARS])
        alike = 0
        for row in self._rows_opening(opening):
            if self._digest_of(row) == digest:
                return  # the same text again
            alike += 1
        self._openings.append(opening)
        self._lengths.append(len(text))
        self._digests += digest
        if alike < _CANDIDATES:  # boilerplate openings must not make lookups quadratic
            self._place(len(self._lengths) - 1)

    def __len__(self) -> int:
        return len(self._lengths)

    def hashes(self) -> set[str]:
        """The text hashes, for reusing vectors: made when asked, once the chunking is done."""
        step = _DIGEST_BYTES
        return {self._digests[at : at + step].hex() for at in range(0, len(self._digests), step)}

    def _place(self, row: int) -> None:
        if 2 * (self._indexed + 1) > len(self._index):  # at most half full: probes stay short
            old, self._index = self._index, array("i", [_EMPTY]) * (2 * len(self._index))
            for placed in old:
                if placed != _EMPTY:
                    self._index[self._free_slot(self._openings[placed])] = placed
        self._index[self._free_slot(self._openings[row])] = row
        self._indexed += 1

    def _free_slot(self, opening: int) -> int:
        mask = len(self._index) - 1
        slot = opening & mask
        while self._index[slot] != _EMPTY:
            slot = (slot + 1) & mask
        return slot

    def _rows_opening(self, opening: int) -> Iterator[int]:
        """The indexed rows whose opening has this hash: at most _CANDIDATES."""
        mask = len(self._index) - 1
        slot = opening & mask
        while (row := self._index[slot]) != _EMPTY:
            if self._openings[row] == opening:
                yield row
            slot = (slot + 1) & mask

    def _digest_of(self, row: int) -> bytes:
        return bytes(self._digests[row * _DIGEST_BYTES : (row + 1) * _DIGEST_BYTES])

    def _alike(self, span: str) -> Iterator[tuple[int, bytes]]:
        """(length, digest) of the chunks that open as `span` does (all of it, if it is shorter)."""
        for row in self._rows_opening(hash(span[:_PREFIX_CHARS])):
            yield self._lengths[row], self._digest_of(row)

    def _found(self, span: str, digest: bytes) -> bool:
        return bytes.fromhex(self._digest(span)) == digest

    def longest_at(self, text: str, window: Window, limit: int) -> int | None:
        """How many units of `window`, from its first, make the longest previous chunk found whole
        there (ending where a unit ends, within `limit`); None if none. The work is bounded per
        unit: a few short spans, and at most _CANDIDATES chunks that open alike."""
        start, best = window.units[0].start, None
        for count, unit in enumerate(itertools.islice(window.units, 0, _PREFIX_CHARS), start=1):
            if unit.end - start >= _PREFIX_CHARS:
                break
            span = text[start : unit.end]  # shorter than an opening: keyed by its whole text
            if any(n == len(span) and self._found(span, d) for n, d in self._alike(span)):
                best = count
        for length, digest in self._alike(text[start : start + _PREFIX_CHARS]):
            reach = window.count_to(start + length)
            if (
                reach is None
                or length > limit
                or length < _PREFIX_CHARS
                or (best is not None and reach <= best)
            ):
                continue
            if self._found(text[start : start + length], digest):
                best = reach
        return best


class Window:
    """The units ahead of the chunker, as far as a chunk can reach, and which of them ends where."""

    def __init__(self, units: Iterator[Unit], reach: int) -> None:
        self._source, self._reach = units, reach
        self.units: deque[Unit] = deque()
        self._taken = 0  # units popped so far: positions in `_ends` are absolute
        self._ends: dict[int, int] = {}

    def fill(self) -> bool:
        """Read ahead until the units span `reach` characters from the first; False when empty."""
        while not self.units or self.units[-1].end - self.units[0].start <= self._reach:
            unit = next(self._source, None)
            if unit is None:
                break
            self._ends[unit.end] = self._taken + len(self.units)
            self.units.append(unit)
        return bool(self.units)

    def count_to(self, end: int) -> int | None:
        position = self._ends.get(end)
        return None if position is None else position - self._taken + 1

    def take(self, count: int) -> list[Unit]:
        taken = [self.units.popleft() for _ in range(count)]
        for unit in taken:
            del self._ends[unit.end]
        self._taken += count
        return taken
