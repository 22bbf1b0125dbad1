"""Which PDF pages need OCR (`embedding_pipeline/stages/documents/text_layer.py`), measured on real
extractions: the one-page PDFs of `testkit/text_layers.py` (good pages of every kind, pages garbled
the ways producers garble them, scans), read with pypdf as the pipeline reads them.

Prints, per group of pages: how many, the decision's confusion against the label, and each score's
range (min-max) next to its threshold; then the margins (the highest score on a good page, the lowest
on a garbled page of the kind the score is for) and the time per page: the rule's, `page_shows_image`'s
and pypdf's own extract_text for comparison. Offline, ~15 s (building the PDFs is most of it).

    .venv/bin/python -m bench.text_layer
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass

from embedding_pipeline.stages.documents import text_layer
from embedding_pipeline.stages.documents.text_layer import TextLayerQuality, measure, needs_ocr
from testkit.text_layers import SAMPLES, PageRead, Sample, read_page

REPEAT = 50  # calls of the rule per page, for its time
# The score each garbled group is for: its margin is its lowest value there against the highest on good pages.
SCORE_OF_GROUP = {
    "no-tounicode": "unreadable",
    "gid": "unreadable",
    "glyph-names": "unreadable",
    "pua": "unreadable",
    "fffd": "unreadable",
    "missing-font": "unreadable",
    "partly-garbled": "unreadable",
    "custom-codes": "soup",
    "cp1251": "mojibake",
}
THRESHOLDS = {
    "unreadable": text_layer.MAX_UNREADABLE,
    "soup": text_layer.MAX_SOUP,
    "mojibake": text_layer.MAX_MOJIBAKE,
}


@dataclass(frozen=True, slots=True)
class Page:
    sample: Sample
    read: PageRead
    quality: TextLayerQuality
    decided: bool  # needs_ocr's answer
    extract_ms: float  # pypdf: open the PDF, extract_text, page_shows_image
    rule_us: float  # needs_ocr per call


def read_all() -> list[Page]:
    pages = []
    for sample in SAMPLES:
        pdf = sample.make()
        started = time.perf_counter()
        read = read_page(pdf)
        extract_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        for _ in range(REPEAT):
            decided = needs_ocr(read.text, shows_image=read.shows_image)
        rule_us = (time.perf_counter() - started) / REPEAT * 1e6
        pages.append(Page(sample, read, measure(read.text), decided, extract_ms, rule_us))
    return pages


def _span(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}"


def report(pages: list[Page]) -> dict[str, object]:
    groups: dict[str, list[Page]] = {}
    for page in pages:
        groups.setdefault(page.sample.group, []).append(page)
    rows: dict[str, object] = {}
    for group, members in groups.items():
        wrong = [p.sample.name for p in members if p.decided != p.sample.needs_ocr]
        rows[group] = {
            "pages": len(members),
            "label": "needs OCR" if members[0].sample.needs_ocr else "usable",
            "decided_ocr": sum(p.decided for p in members),
            "wrong": wrong,
            "chars": f"{min(p.quality.chars for p in members)}-{max(p.quality.chars for p in members)}",
            "shows_image": sum(p.read.shows_image for p in members),
            **{score: _span([getattr(p.quality, score) for p in members]) for score in THRESHOLDS},
        }
    good = [p for p in pages if not p.sample.needs_ocr]
    garbled = [p for p in pages if p.sample.needs_ocr and p.sample.group != "scan"]
    margins = {}
    for score, threshold in THRESHOLDS.items():
        mine = [p for p in garbled if SCORE_OF_GROUP.get(p.sample.group) == score]
        top_good = max(good, key=lambda p: getattr(p.quality, score))
        low_garbled = min(mine, key=lambda p: getattr(p.quality, score))
        margins[score] = {
            "threshold": threshold,
            "highest_on_good": f"{getattr(top_good.quality, score):.3f} ({top_good.sample.name})",
            "lowest_on_garbled": f"{getattr(low_garbled.quality, score):.3f} "
            f"({low_garbled.sample.group}/{low_garbled.sample.name})",
        }
    scans = [p for p in pages if p.sample.group == "scan"]
    with_image = [p for p in good if p.read.shows_image]
    margins["chars_over_image"] = {
        "threshold": text_layer.MIN_TEXT_OVER_IMAGE,
        "most_on_scan": max(p.quality.chars for p in scans),
        "fewest_on_good_with_image": min(p.quality.chars for p in with_image),
    }
    texts = [p for p in pages if p.quality.chars > 300]
    return {
        "pages": len(pages),
        "good": len(good),
        "needs_ocr": len(pages) - len(good),
        "false_ocr_on_good": sum(p.decided for p in good),
        "caught": sum(p.decided for p in pages if p.sample.needs_ocr),
        # Without the page's one fact: the scans' footers read as good text.
        "caught_from_text_alone": sum(p.quality.garbled for p in pages if p.sample.needs_ocr),
        "groups": rows,
        "margins": margins,
        "time": {
            "rule_us_per_page_median": round(statistics.median(p.rule_us for p in pages), 1),
            "rule_us_per_page_max": round(max(p.rule_us for p in pages), 1),
            "rule_us_per_1000_chars": round(
                statistics.median(p.rule_us / p.quality.chars * 1000 for p in texts), 1
            ),
            "pypdf_read_ms_per_page_median": round(statistics.median(p.extract_ms for p in pages), 2),
            "pypdf_read_us_per_1000_chars": round(
                statistics.median(p.extract_ms * 1000 / p.quality.chars * 1000 for p in texts), 1
            ),
        },
    }


def table(figures: dict[str, object]) -> str:
    groups = figures["groups"]
    assert isinstance(groups, dict)
    head = f"{'group':16} {'n':>3} {'label':9} {'ocr':>4} {'chars':>10} {'image':>5}  "
    head += "  ".join(f"{score} (max {limit})" for score, limit in THRESHOLDS.items())
    lines = [head]
    for group, row in groups.items():
        lines.append(
            f"{group:16} {row['pages']:>3} {row['label']:9} {row['decided_ocr']:>4} {row['chars']:>10} "
            f"{row['shows_image']:>5}  {row['unreadable']:>17}  {row['soup']:>11}  {row['mojibake']:>15}"
            + (f"  wrong: {row['wrong']}" if row["wrong"] else "")
        )
    return "\n".join(lines)


def main() -> dict[str, object]:
    return report(read_all())


if __name__ == "__main__":
    started = time.perf_counter()
    figures = main()
    print(table(figures))
    figures["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({key: value for key, value in figures.items() if key != "groups"}, indent=2))
