"""Every module compiles and imports on the interpreter running the tests.

CI runs the suite on the default Python and on the newest one the machine has (`.ci/run`): a module
that only a newer compiler refuses (Python 3.13 refused a lone surrogate written in a docstring,
which 3.12 took) fails here by name, not as a crash of the stack that said it was ready.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

PACKAGES = ("handlers", "embedding_pipeline", "devstack", "embedpipe", "testkit", "bench", "tests")


def _sources() -> list[Path]:
    found = [ROOT / "index.py"]
    for package in PACKAGES:
        found += sorted((ROOT / package).rglob("*.py"))
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = _sources()


def test_the_sources_are_found() -> None:
    assert len(SOURCES) > 150
    assert ROOT / "embedding_pipeline" / "stages" / "documents" / "formats.py" in SOURCES


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_source_compiles(path: Path) -> None:
    compile(path.read_bytes(), str(path), "exec", dont_inherit=True)


# `__main__` modules run a program when imported: compiling them above is what can be checked. `index`
# builds an instance (settings, logging) as it loads: tests/test_index.py imports it in interpreters of
# its own, the way the runtime does.
IMPORTABLE = [_module_name(path) for path in SOURCES if path.stem not in ("__main__", "index")]


@pytest.mark.parametrize("module", IMPORTABLE)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)
    assert module in sys.modules
