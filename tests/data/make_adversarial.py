"""Write the adversarial corpus (testkit/adversarial.py) to a folder, for whoever wants the files.

    .venv/bin/python -m tests.data.make_adversarial OUT_DIR [--full]

Without --full the large shapes are written at 1 MB; with it, at the sizes the benchmark measures
(30 MB and more: not for committing). The tests build what they need in memory and use no files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from testkit.adversarial import MB, MEMORY_SHAPES, POISON_PDFS, TIME_SHAPES, deeply_nested_json


def write_corpus(out: Path, *, full: bool) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for shape in TIME_SHAPES:
        written.append(out / f"time-{shape.name}-{shape.key}")
        written[-1].write_bytes(shape.make(MB))
    for shape in MEMORY_SHAPES:
        written.append(out / f"memory-{shape.name}-{shape.key}")
        written[-1].write_bytes(shape.make(shape.size if full else MB))
    for name, make in POISON_PDFS.items():
        written.append(out / f"poison-{name}.pdf")
        written[-1].write_bytes(make())
    written.append(out / "poison-deeply-nested.json")
    written[-1].write_bytes(deeply_nested_json())
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--full", action="store_true", help="the benchmark's sizes (30 MB and more)")
    arguments = parser.parse_args()
    for path in write_corpus(arguments.out, full=arguments.full):
        print(f"{path.stat().st_size:>12,}  {path}")


if __name__ == "__main__":
    main()
