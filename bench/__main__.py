"""`python -m bench` (make bench): every benchmark in turn, one JSON document of figures."""

from __future__ import annotations

import asyncio
import json
import platform
import time

from bench import (
    cold_start,
    cpu,
    edits,
    formats,
    formats_slides,
    hybrid_search,
    memory,
    ocr,
    package,
    pathological,
    quota,
    retrieval,
    reupload,
    shared_quota,
    vector_index,
)
from embedding_pipeline.logs import configure_logging


def main() -> None:
    configure_logging("ERROR")
    started = time.perf_counter()
    figures: dict[str, object] = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "cold_start": cold_start.main(),
        "quota": asyncio.run(quota.main()),
        "shared_quota": asyncio.run(shared_quota.main()),
        "memory": asyncio.run(memory.main()),
        "cpu": cpu.main(),
        "pathological": pathological.main(),
        "formats": formats.main(),
        "formats_slides": formats_slides.main(),
        "ocr": ocr.main(),
        "reupload": asyncio.run(reupload.main()),
        "edits": edits.main(),
        "vector_index": asyncio.run(vector_index.main()),
        "hybrid_search": asyncio.run(hybrid_search.main()),
        "retrieval": retrieval.main(),
        "package": package.main(),
    }
    figures["seconds"] = int(time.perf_counter() - started)
    print(json.dumps(figures, indent=2, ensure_ascii=False))


main()
