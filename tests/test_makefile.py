"""The Makefile's interpreter check: one line for a Python too old, and a .venv that is not the
interpreter's own is rebuilt rather than reused (a newcomer's 3.10 attempt must not poison the next)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import ROOT


def _fake_python(path: Path, answer: str) -> Path:
    """An interpreter that answers the Makefile's version probes with `answer` (what the probe of a
    real one prints: "3.12.1", or "old 3.10.13" for the interpreter the Makefile was given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{answer}'\n")
    path.chmod(0o755)
    return path


# The outer make's flags, and the variables it was given on its command line, which GNU make exports
# to its recipes' environment (CI's `make test PYTHON=... VENV=.venv-newest`).
_OUTER_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "PYTHON", "VENV")


def _make(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "Makefile", workdir / "Makefile")
    # Not the make that runs the suite: its variables would override the defaults under test.
    env = {name: value for name, value in os.environ.items() if name not in _OUTER_MAKE}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        check=False,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_an_old_python_gets_one_line_naming_what_is_needed(tmp_path: Path) -> None:
    old = _fake_python(tmp_path / "bin" / "python3.10", "old 3.10.13")
    result = _make(tmp_path, "test", f"PYTHON={old}")
    assert result.returncode != 0
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "needs Python 3.11 or newer" in line
    assert "is 3.10.13" in line
    assert "PYTHON=python3.12" in line
    assert not (tmp_path / ".venv").exists()  # nothing was created for pip to fail in


def test_a_missing_python_is_named(tmp_path: Path) -> None:
    result = _make(tmp_path, "run", "PYTHON=python-that-is-not-there")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "'python-that-is-not-there' was not found" in line


def test_a_venv_made_by_another_python_is_rebuilt(tmp_path: Path) -> None:
    _fake_python(tmp_path / ".venv" / "bin" / "python", "3.10.13")  # left by a failed 3.10 attempt
    current = _fake_python(tmp_path / "py" / "python3", "3.12.1")
    dry = _make(tmp_path, "-n", "install", f"PYTHON={current}")
    assert "made by Python 3.10.13" in dry.stdout
    assert (tmp_path / ".venv").exists()  # a dry run deletes nothing
    result = _make(tmp_path, "install", f"PYTHON={current}")
    assert "rebuilding .venv" in result.stdout
    assert not (tmp_path / ".venv" / "bin" / "python").exists()


def test_the_venv_of_the_same_python_is_kept(tmp_path: Path) -> None:
    _fake_python(tmp_path / ".venv" / "bin" / "python", "3.12.1")
    current = _fake_python(tmp_path / "py" / "python3", "3.12.1")
    result = _make(tmp_path, "-n", "install", f"PYTHON={current}")
    assert "rebuilding" not in result.stdout
    assert (tmp_path / ".venv" / "bin" / "python").exists()
