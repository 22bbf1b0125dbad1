"""Packaged formats (PPTX, ODT, EPUB; testkit/packages.py). Targets: linear time, peak RSS under 200 MB.

1. Time to parse and chunk each shape at 1× and 4× its size, in this process: ×4 size within ×5 time.
2. Peak RSS (VmHWM) of a fresh process parsing, chunking and hashing each shape at its cap (10,000
   slides; 60 MB of XML, under zipsafe.py's 64 MiB) and the crafted files, with the default limits
   (`testkit.adversarial.peak_rss`).
"""

from __future__ import annotations

import contextlib
import json
import time

from bench.pathological import peak_rss, report
from embedding_pipeline.errors import PermanentError
from embedding_pipeline.stages.documents import chunk_document, parse_document
from testkit.adversarial import MB, Shape, default_limits
from testkit.packages import (
    epub,
    epub_of_size,
    odt_deeply_nested,
    odt_paragraphs,
    package,
    pptx_many_slides,
    zero_filled,
)


def _slide_bomb(size: int) -> bytes:
    return package([("ppt/presentation.xml", zero_filled(size))])


TIME_SHAPES = (
    Shape("pptx_slides", "deck.pptx", pptx_many_slides, 2_500),  # size: slides
    Shape("odt_paragraphs", "text.odt", odt_paragraphs, 15 * MB),  # size: bytes of XML
    Shape("epub_chapters", "book.epub", epub_of_size, 15 * MB),
)
MEMORY_SHAPES = (
    Shape("pptx_10000_slides", "deck.pptx", pptx_many_slides, 10_000),
    Shape("odt_60MB_of_xml", "text.odt", odt_paragraphs, 60 * MB),
    Shape("epub_60MB_of_xhtml", "book.epub", epub_of_size, 60 * MB),
    Shape("odt_nested_100000_deep", "deep.odt", odt_deeply_nested, 100_000),
    Shape("epub_chapter_bomb", "bomb.epub", lambda size: epub([("c.xhtml", zero_filled(size))]), 1000 * MB),
    Shape("pptx_slide_bomb", "bomb.pptx", _slide_bomb, 1000 * MB),
)


def timings() -> dict[str, object]:
    chunking, limits = default_limits()
    out: dict[str, object] = {}
    for shape in TIME_SHAPES:
        seconds = []
        for size in (shape.size, 4 * shape.size):
            data = shape.make(size)
            started = time.perf_counter()
            with contextlib.suppress(PermanentError):
                chunk_document(parse_document(data, shape.key, limits=limits), chunking, limits)
            seconds.append(time.perf_counter() - started)
        out[shape.name] = {
            "seconds": {"1x": round(seconds[0], 2), "4x": round(seconds[1], 2)},
            "ratio_4x_size": round(seconds[1] / max(seconds[0], 1e-6), 1),
        }
    return out


def main() -> dict[str, object]:
    rss = peak_rss(MEMORY_SHAPES, prefix="")  # first, as before the timings
    return report(timings(), rss)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
