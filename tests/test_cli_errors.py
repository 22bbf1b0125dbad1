"""Functional: how `embedpipe` ends when it cannot do what was asked, run as a user runs it (a real
process: its exit status and stderr are the point). embedpipe/exits.py holds the table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from devstack.running import RunningStack
from devstack.s3server import S3Server, free_port
from embedpipe.parser import DISTRIBUTION, build_parser
from tests.support import ROOT
from tests.test_cli import cli, user_env

FUNCTION_SETTINGS = {
    "S3_ENDPOINT": "http://127.0.0.1:9",
    "AWS_ACCESS_KEY_ID": "key",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "YC_API_KEY": "AQVN-test",
    "SOURCE_BUCKET": "docs",
}


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize("command", [["status"], ["ls"], ["search", "q"], ["embed", "README.md"]])
def test_a_missing_setting_is_one_line_and_exit_2(command: list[str]) -> None:
    result = cli(*command, env=user_env(**FUNCTION_SETTINGS))  # no YC_FOLDER_ID
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith(f"embedpipe {command[0]}: invalid configuration")
    assert "YC_FOLDER_ID" in line


def test_invoke_with_a_missing_setting_is_one_line_too() -> None:
    event = cli("generate-event", "storage").stdout
    result = cli("invoke", "-", env=user_env(**FUNCTION_SETTINGS), stdin=event)
    assert result.returncode == 2
    assert "YC_FOLDER_ID" in one_line(result.stderr)
    assert '"msg": "configuration_invalid"' in result.stdout  # the function's own log, as in the cloud


def test_a_bad_value_names_its_variable() -> None:
    env = user_env(**FUNCTION_SETTINGS, YC_FOLDER_ID="b1g", EMBEDDINGS_RPS="-3")
    result = cli("status", env=env)
    assert result.returncode == 2
    assert "EMBEDDINGS_RPS" in one_line(result.stderr)


def test_debug_keeps_the_traceback() -> None:
    result = cli("status", env=user_env(**FUNCTION_SETTINGS, EMBEDPIPE_DEBUG="1"))
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ConfigurationError" in result.stderr
    flagged = cli("--debug", "status", env=user_env(**FUNCTION_SETTINGS))
    assert "Traceback (most recent call last)" in flagged.stderr


def test_version() -> None:
    from importlib.metadata import version  # noqa: PLC0415

    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"embedpipe {version(DISTRIBUTION)}"


def test_every_option_says_its_meaning_and_default() -> None:
    """The commands embedpipe defines (run's and generate-event's come from devstack/)."""
    parser = build_parser("embedpipe")
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert isinstance(commands, dict)
    for name in ("invoke", "embed", "search", "reindex", "status", "put", "ls", "cat", "rm"):
        for action in commands[name]._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            if action.option_strings:
                assert "default" in action.help, (name, action.dest)
            if action.dest == "bucket":
                assert "env SOURCE_BUCKET" in action.help
    top = {action.dest: action.help or "" for action in parser._actions}
    assert "EMBEDPIPE_DEBUG" in top["debug"]


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["generate-event", "queue", "--text", "x"], 141),
        (["--help"], 0),  # argparse ignores a failed write of its help, and exits 0
    ],
)
def test_a_closed_pipe_ends_quietly(args: list[str], status: int) -> None:
    """`embedpipe ... | head -0`: the reader is gone before the first write."""
    process = subprocess.Popen(
        [sys.executable, "-m", "embedpipe", *args],
        cwd=ROOT,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()
    with process.stderr:
        stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == status
    assert stderr == ""


def fake_stack(s3_server: S3Server, bucket: str, data_dir: Path) -> dict[str, str]:
    """A shell that finds a "running local stack" whose bucket is `bucket` on the test SeaweedFS and
    whose trigger never embeds anything: what `embed` waits for never comes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = urlsplit(s3_server.endpoint).port
    assert port is not None
    RunningStack(os.getpid(), port, free_port(), free_port(), bucket).write(data_dir)
    return user_env(LOCAL_DATA_DIR=str(data_dir))


def test_the_wait_for_manifests_is_bounded(s3_server: S3Server, s3_bucket: str, tmp_path: Path) -> None:
    env = fake_stack(s3_server, s3_bucket, tmp_path / "stack")
    (tmp_path / "a.md").write_text("# A\n\nNobody embeds this.")
    started = time.monotonic()
    result = cli("embed", str(tmp_path / "a.md"), "--wait-timeout", "1.5", env=env)
    assert result.returncode == 124
    assert time.monotonic() - started < 30
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "embedpipe embed: gave up waiting after 1.5 s: 1 of 1 file(s) have no manifest yet"
    )
    assert "(incoming/a.md)" in last
    assert "embedpipe status" in last
    assert "embedpipe cat embeddings/incoming/a.md.manifest.json" in last
    assert json.loads(result.stdout)["pending"] == 1


def test_a_bad_wait_timeout_is_refused_before_uploading(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    env = fake_stack(s3_server, s3_bucket, tmp_path / "stack") | {"EMBEDPIPE_WAIT_TIMEOUT_S": "soon"}
    (tmp_path / "a.md").write_text("# A")
    result = cli("embed", str(tmp_path / "a.md"), env=env)
    assert result.returncode == 2
    assert "EMBEDPIPE_WAIT_TIMEOUT_S='soon' is not a number of seconds" in one_line(result.stderr)
    assert "incoming/a.md" not in cli("ls", env=env).stdout


def test_ctrl_c_during_the_wait_is_one_line_and_130(
    s3_server: S3Server, s3_bucket: str, tmp_path: Path
) -> None:
    env = fake_stack(s3_server, s3_bucket, tmp_path / "stack")
    (tmp_path / "a.md").write_text("# A\n\nNobody embeds this either.")
    process = subprocess.Popen(
        [sys.executable, "-m", "embedpipe", "embed", str(tmp_path / "a.md")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    first = process.stderr.readline()  # printed once the wait begins
    assert first.startswith("the local stack embeds what is uploaded: waiting up to 65 s for 1 file(s)")
    time.sleep(1.0)  # the upload made, the wait under way
    process.send_signal(signal.SIGINT)
    stdout, rest = process.communicate(timeout=30)
    assert process.returncode == 130
    assert one_line(rest) == (
        "embedpipe embed: interrupted: 1 of 1 file(s) uploaded; the stack goes on embedding them: "
        "`embedpipe status` counts the manifests"
    )
    assert stdout == ""
