"""What embedding a document would cost, from its size, without reading it.

A dry run over a million documents cannot read a million objects. Its estimate is the document's
size times the tokens a byte of that kind of document (its key's extension) cost in this very
bucket: the manifests reconcile reads anyway say how many bytes each embedded source had and how
many tokens its chunks took. Where no manifest of a kind exists yet, a few documents of that kind
are read, parsed and chunked (at most SAMPLE_PER_KIND a sweep), and their text counted at the
tokens a character cost in the records already written (or at CHARS_PER_TOKEN when nothing is
embedded yet: the chunker's own, conservative, estimate). What calibrated each kind is reported, so
a reader knows how far to trust the figure. A stale document is estimated whole: an edit pays only
for the chunks it touches, so that part of the figure is an upper bound.

Pages Vision OCR would read are estimated the same way (the manifests' `ocr_pages` per byte of the
kind, or a sample's), except that an image is one page whatever its size; pages already read for the
version (`.ocr.json`) are not paid again, which a size cannot tell: an upper bound too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLE_PER_KIND = 8
_IMAGES = frozenset({"png", "jpg", "jpeg"})  # one page each for OCR


def kind_of(key: str) -> str:
    """A document's kind for the estimate: its extension, lower case ("" without one)."""
    name = key.rsplit("/", 1)[-1]
    return name.rpartition(".")[2].lower() if "." in name else ""


@dataclass(slots=True)
class _Kind:
    bytes: int = 0
    tokens: int = 0
    documents: int = 0
    source: str = "manifests"  # or "sample"
    ocr_pages: int = 0

    def per_byte(self) -> float | None:
        return self.tokens / self.bytes if self.bytes else None


@dataclass(slots=True)
class Calibration:
    """Tokens a byte costs, by kind of document, learnt from this bucket as a sweep walks it."""

    chars_per_token: float  # CHARS_PER_TOKEN: the fallback where nothing was learnt
    kinds: dict[str, _Kind] = field(default_factory=dict)
    tokens_per_char: float | None = None  # from records already written, for the samples
    sampled: dict[str, int] = field(default_factory=dict)
    uncalibrated_bytes: int = 0

    def learn_manifest(self, key: str, size: int, tokens: int, ocr_pages: int = 0) -> None:
        kind = self.kinds.setdefault(kind_of(key), _Kind())
        if kind.source == "manifests":
            kind.bytes += size
            kind.tokens += tokens
            kind.documents += 1
            kind.ocr_pages += ocr_pages

    def learn_sample(self, key: str, size: int, tokens: int, ocr_pages: int = 0) -> None:
        name = kind_of(key)
        kind = self.kinds.setdefault(name, _Kind(source="sample"))
        kind.bytes += size
        kind.tokens += tokens
        kind.documents += 1
        kind.ocr_pages += ocr_pages
        self.sampled[name] = self.sampled.get(name, 0) + 1

    def estimate_ocr_pages(self, key: str, size: int) -> int:
        """Pages Vision OCR would read in `size` bytes of this kind: an image's one, else as learnt."""
        name = kind_of(key)
        if name in _IMAGES:
            return 1
        kind = self.kinds.get(name)
        if kind is None or not kind.bytes or not kind.ocr_pages:
            return 0
        return max(1, round(size * kind.ocr_pages / kind.bytes))

    def wants_sample(self, key: str) -> bool:
        name = kind_of(key)
        known = self.kinds.get(name)
        if known is not None and known.source == "manifests" and known.bytes:
            return False
        return self.sampled.get(name, 0) < SAMPLE_PER_KIND

    def tokens_of_text(self, chars: int) -> int:
        """What `chars` characters of chunk text cost: as the records say, else the conservative rule."""
        ratio = self.tokens_per_char if self.tokens_per_char is not None else 1 / self.chars_per_token
        return round(chars * ratio)

    def estimate(self, key: str, size: int) -> int:
        """Tokens embedding `size` bytes of this kind would cost."""
        kind = self.kinds.get(kind_of(key))
        per_byte = None if kind is None else kind.per_byte()
        if per_byte is None:
            self.uncalibrated_bytes += size
            return round(size / self.chars_per_token)  # a byte is at most a character
        return round(size * per_byte)

    def saved(self) -> dict[str, Any]:
        """What the sweep's state keeps of it between invocations."""
        return {
            "kinds": {
                name: [k.bytes, k.tokens, k.documents, k.source, k.ocr_pages]
                for name, k in self.kinds.items()
            },
            "tokens_per_char": self.tokens_per_char,
            "sampled": self.sampled,
            "uncalibrated_bytes": self.uncalibrated_bytes,
        }

    @classmethod
    def restore(cls, chars_per_token: float, saved: dict[str, Any]) -> Calibration:
        calibration = cls(chars_per_token)
        try:
            for name, (size, tokens, documents, source, *ocr) in dict(saved.get("kinds", {})).items():
                pages = int(ocr[0]) if ocr else 0  # states saved before OCR have four fields
                calibration.kinds[str(name)] = _Kind(
                    int(size), int(tokens), int(documents), str(source), pages
                )
            ratio = saved.get("tokens_per_char")
            calibration.tokens_per_char = None if ratio is None else float(ratio)
            calibration.sampled = {str(k): int(v) for k, v in dict(saved.get("sampled", {})).items()}
            calibration.uncalibrated_bytes = int(saved.get("uncalibrated_bytes", 0))
        except (TypeError, ValueError):
            return cls(chars_per_token)  # a damaged state: learn afresh
        return calibration

    def report(self) -> dict[str, Any]:
        kinds = {
            name or "(none)": {
                "tokens_per_byte": None if kind.per_byte() is None else round(kind.per_byte() or 0, 4),
                "from": (
                    f"{kind.documents} manifests"
                    if kind.source == "manifests"
                    else f"a sample of {kind.documents} documents read"
                ),
            }
            for name, kind in sorted(self.kinds.items())
            if kind.bytes
        }
        return {
            "method": (
                "each document's size times the tokens a byte of its kind (extension) cost in this "
                "bucket's manifests, or in a sample read where none existed; stale documents whole"
            ),
            "kinds": kinds,
            "uncalibrated_bytes": self.uncalibrated_bytes,
            "tokens_per_char": None if self.tokens_per_char is None else round(self.tokens_per_char, 4),
        }
