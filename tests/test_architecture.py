"""Unit: the shape of the code, checked so that it stays walkable.

- No import circle among the function's modules (`index.py`, `handlers/`, `embedding_pipeline/`),
  counting every import: at module level, inside functions (lazy), and for type checking only.
- Dependencies run one way: the core imports nothing of the trigger adapters, the local stack, the
  operator's tool, the test doubles, the tests or the benchmarks; the adapters nothing but the core.
- No module of the function over 300 lines, no class over 150.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT

SHIPPED = ("index.py", "handlers", "embedding_pipeline")
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 150


def _modules() -> dict[str, Path]:
    found = {"index": ROOT / "index.py"}
    for package in SHIPPED[1:]:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imported(path: Path) -> Iterator[str]:
    """Every module name an import statement anywhere in the file names."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _resolve(name: str) -> str | None:
    """The function's module an imported name belongs to, or None for any other package's."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for imported in _imported(path):
            target = _resolve(imported)
            # A module importing its own package's __init__ (or itself) is no edge worth a circle.
            if target is not None and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_among_the_functions_modules() -> None:
    assert _cycles(_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (
            "embedding_pipeline",
            ("handlers", "index", "devstack", "embedpipe", "testkit", "tests", "bench", "integrations"),
        ),
        ("handlers", ("index", "devstack", "embedpipe", "testkit", "tests", "bench", "integrations")),
    ],
)
def test_dependencies_run_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = sorted(
        f"{name} imports {imported}"
        for name, path in MODULES.items()
        if name.startswith(package)
        for imported in _imported(path)
        if imported.split(".")[0] in forbidden
    )
    assert wrong == []


def test_no_module_of_the_function_is_too_long() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_class_of_the_function_is_too_long() -> None:
    large = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > MAX_CLASS_LINES:
                    large[f"{name}.{node.name}"] = size
    assert large == {}
