"""Package: the size of what requirements.txt installs (the function's dependencies). Target < 20 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def size_of(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="bench-package-") as target:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
                target,
                "-r",
                str(ROOT / "requirements.txt"),
            ],
            check=True,
            capture_output=True,
        )
        folder = Path(target)
        sizes = {
            path.name: round(size_of(path) / 2**20, 2)
            for path in folder.iterdir()
            if path.is_dir() and not path.name.endswith((".dist-info", "__pycache__"))
        }
        total = size_of(folder)
    largest = dict(sorted(sizes.items(), key=lambda item: -item[1])[:6])
    return {"installed_mb": round(total / 2**20, 1), "largest_mb": largest}


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
