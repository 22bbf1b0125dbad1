"""The files `embedpipe embed` was given, checked before anything is uploaded.

Two files that would land on one key are refused, naming both (the second upload would replace the
first, and a wait for the first's manifest would never end). Files the function would refuse by
their name or first bytes (formats.refusal: the same test the function makes) are set aside with
one warning line each, unless the user asks to upload them anyway. A metadata sidecar
(`NAME.metadata.json`) is no document: it goes beside its document, first, so that the document's
run reads it (`split_sidecars`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from embedding_pipeline.bucket_policy import document_of_sidecar
from embedding_pipeline.stages.documents.formats import SNIFF_BYTES, refusal
from embedpipe.exits import CommandError


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: Path
    name: str  # its key under SOURCE_PREFIX (or its name under --out)
    size: int


def collect(paths: list[Path], *, stored_at: str) -> list[LocalFile]:
    """(file, name relative to what was given), folders walked, hidden files skipped; the same file
    given twice counts once; CommandError for a missing path or two files with one name (`stored_at`
    + name: where it would be stored, for the message)."""
    found: dict[str, LocalFile] = {}
    for path in paths:
        if path.is_file():
            candidates = [(path, path.name)]
        elif path.is_dir():
            candidates = [
                (child, child.relative_to(path).as_posix())
                for child in sorted(path.rglob("*"))
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts)
            ]
        else:
            raise CommandError(f"no such file or folder: {path}")
        for file, name in candidates:
            other = found.get(name)
            if other is not None and other.path.resolve() != file.resolve():
                raise CommandError(
                    f"{other.path} and {file} would both be stored as {stored_at}{name}, one "
                    "replacing the other: rename one, or give their common folder instead (its files "
                    "keep their path inside it); nothing was uploaded"
                )
            found.setdefault(name, LocalFile(file, name, file.stat().st_size))
    return list(found.values())


def set_aside_refused(files: list[LocalFile], *, command: str) -> tuple[list[LocalFile], int]:
    """The files the function would embed, and how many were set aside (one warning line each)."""
    kept = []
    for file in files:
        with file.path.open("rb") as stream:
            reason = refusal(file.name, stream.read(SNIFF_BYTES))
        if reason is None:
            kept.append(file)
        else:
            print(f"embedpipe {command}: skipping {file.path}: {reason}", file=sys.stderr)
    skipped = len(files) - len(kept)
    if skipped:
        print(
            f"embedpipe {command}: skipped {skipped} file(s) the function would refuse "
            "(--upload-unsupported uploads them, to be parked with their reason)",
            file=sys.stderr,
        )
    return kept, skipped


def split_sidecars(files: list[LocalFile]) -> tuple[list[LocalFile], list[LocalFile]]:
    """(the documents, the metadata sidecars): a sidecar is uploaded, never embedded or waited for."""
    documents = [file for file in files if document_of_sidecar(file.name) is None]
    return documents, [file for file in files if document_of_sidecar(file.name) is not None]
