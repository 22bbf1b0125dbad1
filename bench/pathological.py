"""Pathological inputs (testkit/adversarial.py). Targets: linear time, peak RSS under 200 MB.

1. Time to parse and chunk each text shape at 1.25, 2.5 and 5 MB, in this process: linear growth
   shows as a ratio near 4 between the largest and the smallest (quadratic would be 16).
2. Peak RSS (VmHWM) of a fresh process (the function's modules imported) that parses, chunks and
   hashes each large shape with the default limits (MAX_SOURCE_BYTES 32 MiB, MAX_CHUNKS_PER_DOCUMENT
   50,000, 500 tokens × 3 characters a chunk), as the pipeline does before embedding
   (`testkit.adversarial.peak_rss`). Each document is written to a file first, so that building it
   costs the child nothing.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from embedding_pipeline.errors import PermanentError
from embedding_pipeline.stages.documents import chunk_document, parse_document
from testkit.adversarial import MB, MEMORY_SHAPES, TIME_SHAPES, Shape, default_limits
from testkit.adversarial import peak_rss as measure

SIZES = (1_250_000, 2_500_000, 5 * MB)
RSS_TARGET_MB = 200


def timings() -> dict[str, object]:
    chunking, limits = default_limits()
    out: dict[str, object] = {}
    for shape in TIME_SHAPES:
        seconds = []
        for size in SIZES:
            data = shape.make(size)
            started = time.perf_counter()
            with contextlib.suppress(PermanentError):  # a refusal is an outcome too: its time counts
                chunk_document(parse_document(data, shape.key, limits=limits), chunking, limits)
            seconds.append(time.perf_counter() - started)
        out[shape.name] = {
            "seconds": {f"{size / MB:g} MB": round(s, 3) for size, s in zip(SIZES, seconds, strict=True)},
            "ratio_4x_size": round(seconds[-1] / max(seconds[0], 1e-6), 1),
        }
    return out


def peak_rss(shapes: Iterable[Shape] = MEMORY_SHAPES, *, prefix: str = "incoming/") -> dict[str, object]:
    """Each shape's file written at its full size and parsed in a fresh process (testkit's
    `peak_rss`): its outcome, time and peak RSS; the formats' benchmarks measure their shapes here."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as folder:
        for shape in shapes:
            path = Path(folder) / shape.key
            path.write_bytes(shape.make(shape.size))
            out[shape.name] = {
                "input_mb": round(path.stat().st_size / MB, 2),
                **measure(path, prefix + shape.key),
            }
            path.unlink()
    return out


def report(time: dict[str, object], rss: dict[str, object]) -> dict[str, object]:
    """A format benchmark's figures: its timings, each shape's peak RSS, the highest against the target."""
    peaks = [
        figures["peak_rss_mb"]
        for figures in rss.values()
        if isinstance(figures, dict) and "peak_rss_mb" in figures
    ]
    return {
        "time": time,
        "peak_rss": rss,
        "max_peak_rss_mb": max(peaks, default=None),
        "rss_target_mb": RSS_TARGET_MB,
    }


def main() -> dict[str, object]:
    rss = peak_rss()  # first, as it always was
    return report(timings(), rss)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2, ensure_ascii=False))
