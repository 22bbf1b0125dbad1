"""Functional: what `embedpipe embed` and `put` check before uploading, against SeaweedFS and the
Yandex emulator (tests/test_cli.py's `cloud_env`)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import cli, cloud_env  # noqa: F401 - the fixture

ZIP = b"PK\x03\x04" + b"\x00" * 60
GIF = b"GIF89a" + b"\x00" * 60


def test_two_files_for_one_key_are_refused_before_any_upload(
    cloud_env: dict[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    for folder in ("dupA", "dupB"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.md").write_text(f"# {folder}")
    result = cli("embed", str(tmp_path / "dupA/same.md"), str(tmp_path / "dupB/same.md"), env=cloud_env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    bucket = cloud_env["SOURCE_BUCKET"]
    assert line.startswith(
        f"embedpipe embed: {tmp_path}/dupA/same.md and {tmp_path}/dupB/same.md would both be stored as "
        f"s3://{bucket}/incoming/same.md"
    )
    assert "nothing was uploaded" in line
    assert cli("ls", env=cloud_env).stdout == ""
    # The same file given twice is one file, not a conflict.
    twice = cli("embed", str(tmp_path / "dupA/same.md"), str(tmp_path / "dupA/same.md"), env=cloud_env)
    assert twice.returncode == 0, twice.stderr
    assert json.loads(twice.stdout.splitlines()[-1])["files"] == 1


def test_embed_skips_what_the_function_would_refuse(cloud_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "notes.md").write_text("# Notes\n\nKept.")
    (tmp_path / "slides.ppt").write_bytes(ZIP)
    (tmp_path / "photo.gif").write_bytes(GIF)  # Vision OCR reads PNG and JPEG, not GIF
    (tmp_path / "fake.txt").write_bytes(ZIP)
    result = cli("embed", str(tmp_path), env=cloud_env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["files"], summary["skipped"], summary["errors"]) == (1, 3, 0)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("embedpipe embed: skipping")]
    assert len(warnings) == 3
    assert (
        f"skipping {tmp_path}/slides.ppt: unsupported format .ppt (PowerPoint 97-2003 presentation: convert"
        in (result.stderr)
    )
    assert f"skipping {tmp_path}/photo.gif: unsupported format .gif" in result.stderr
    assert f"skipping {tmp_path}/fake.txt: binary file (ZIP archive) with a text extension" in result.stderr
    assert "skipped 3 file(s) the function would refuse (--upload-unsupported" in result.stderr
    assert "incoming/slides.ppt" not in cli("ls", env=cloud_env).stdout

    anyway = cli("embed", str(tmp_path / "slides.ppt"), "--upload-unsupported", env=cloud_env)
    assert anyway.returncode == 1
    assert "slides.ppt: parked: unsupported format .ppt (PowerPoint 97-2003 presentation" in anyway.stderr


def test_put_says_what_will_not_be_embedded(cloud_env: dict[str, str], tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "notes.md").write_text("# Notes")
    (tmp_path / "deck.ppt").write_bytes(ZIP)
    outside = cli("put", str(tmp_path / "notes.md"), "notes.md", env=cloud_env)
    assert outside.returncode == 0
    assert outside.stderr.splitlines() == [
        "embedpipe put: notes.md is outside SOURCE_PREFIX ('incoming/'): stored, but not embedded "
        "(a key such as incoming/notes.md is)"
    ]
    assert "notes.md" in cli("ls", env=cloud_env).stdout
    inside = cli("put", str(tmp_path / "notes.md"), "incoming/notes.md", env=cloud_env)
    assert (inside.returncode, inside.stderr) == (0, "")
    refused = cli("put", str(tmp_path / "deck.ppt"), "incoming/deck.ppt", env=cloud_env)
    assert refused.returncode == 0
    assert "incoming/deck.ppt will be parked, not embedded: unsupported format .ppt" in refused.stderr
