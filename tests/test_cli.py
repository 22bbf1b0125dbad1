"""Functional: the command-line tool, run as a user runs it, against SeaweedFS and the Yandex emulator."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.pgserver import PgServer
from devstack.s3server import free_port
from embedding_pipeline.clients.auth import sigv4_auth
from embedding_pipeline.clients.storage import ObjectStorage
from handlers import event_kind
from testkit.yandex_emulator import EmulatorConfig, YandexEmulator
from tests.seaweed import S3Server
from tests.support import ROOT, run_python


def user_env(**settings: str) -> dict[str, str]:
    """A shell with none of the function's settings but `settings`, and no local stack to be found:
    its data directory is empty and nothing listens on its ports (a developer's `make run` in this
    checkout must not answer for it)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("S3_", "AWS_", "YC_", "EMBEDDINGS_", "LOCAL_", "VECTOR_DB_"))
    }
    nowhere = Path(tempfile.mkdtemp(prefix="no-stack-"))
    env.update(
        {
            "LOCAL_DATA_DIR": str(nowhere),
            "LOCAL_S3_PORT": str(free_port()),
            "LOCAL_EMBEDDINGS_PORT": str(free_port()),
        }
    )
    return env | settings


def cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "embedpipe", *args, env=env or user_env(), stdin=stdin)


@pytest.fixture
def cloud_env(s3_server: S3Server, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The function's settings as a user exports them, pointing at SeaweedFS and the emulator."""
    bucket = f"cli-{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        async with httpx.AsyncClient() as http:
            storage = ObjectStorage(
                http,
                s3_server.endpoint,
                sigv4_auth(s3_server.access_key, s3_server.secret_key, "ru-central1"),
            )
            await storage.create_bucket(bucket)

    asyncio.run(create())
    with YandexEmulator(EmulatorConfig(rps=1000)) as emulator:
        yield user_env(
            YC_FOLDER_ID="b1gtest",
            YC_API_KEY="AQVN-test",
            EMBEDDINGS_URL=emulator.url,
            S3_ENDPOINT=s3_server.endpoint,
            AWS_ACCESS_KEY_ID=s3_server.access_key,
            AWS_SECRET_ACCESS_KEY=s3_server.secret_key,
            SOURCE_BUCKET=bucket,
        )


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (["storage", "--key", "incoming/a b.md", "--action", "delete"], "storage"),
        (["queue", "--text", "привет"], "queue"),
        (["queue", "--key", "incoming/a.md", "--bucket", "docs"], "queue"),
        (["timer", "--dry-run", "--max-tokens", "10"], "timer"),
        (["http", "--path", "/v1/documents", "--body", '{"id": "x", "text": "y"}', "--base64"], "http"),
        (["http", "--payload", "direct", "--method", "GET", "--path", "/healthz"], "http"),
    ],
)
def test_generate_event_prints_events_the_router_recognises(args: list[str], kind: str) -> None:
    result = cli("generate-event", *args)
    assert result.returncode == 0, result.stderr
    assert event_kind(json.loads(result.stdout)) == kind


@pytest.mark.parametrize(
    "args",
    [
        ["generate-event", "carrier-pigeon"],
        ["generate-event", "queue", "--key", "a", "--text", "b"],
        ["embed"],
        ["search"],
        ["frobnicate"],
        ["search", "q", "--top", "many"],
    ],
)
def test_bad_arguments_exit_2_with_usage(args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_every_command_has_help() -> None:
    for command in ("run", "invoke", "generate-event", "embed", "search", "status", "put", "ls", "cat", "rm"):
        result = cli(command, "--help")
        assert result.returncode == 0, command
        assert "usage:" in result.stdout


def test_embed_search_status_round_trip(cloud_env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "ru").mkdir(parents=True)
    (folder / "ru" / "отпуск.md").write_text(
        "# Отпуск\n\nСотрудник получает 28 дней отпуска.", encoding="utf-8"
    )
    (folder / "coffee.txt").write_text("Descale the coffee machine monthly.")
    (folder / "coffee.txt.metadata.json").write_text('{"team": "kitchen"}')  # beside it, no document
    (folder / ".hidden").write_text("skipped")
    (folder / "broken.json").write_text("{not json")

    embedded = cli("embed", str(folder), env=cloud_env)
    assert embedded.returncode == 1  # one file was parked, so the run reports an error
    summary = json.loads(embedded.stdout.strip().splitlines()[-1])
    assert (summary["files"], summary["chunks"], summary["errors"]) == (3, 2, 1)
    assert "broken.json: parked" in embedded.stderr
    records = cli("cat", "embeddings/incoming/coffee.txt.jsonl", env=cloud_env).stdout.splitlines()
    assert [json.loads(line)["metadata"] for line in records] == [{"team": "kitchen"}]

    again = json.loads(
        cli("embed", str(folder / "coffee.txt"), env=cloud_env).stdout.strip().splitlines()[-1]
    )
    assert (again["chunks"], again["embedded"], again["tokens"]) == (1, 0, 0)  # unchanged: nothing paid

    # The emulator's vectors are hashes, so the exact text is the nearest match.
    found = cli("search", "Descale the coffee machine monthly.", "--top", "1", env=cloud_env)
    assert found.returncode == 0, found.stderr
    assert "incoming/coffee.txt#0" in found.stdout
    assert "1.000" in found.stdout

    status = json.loads(cli("status", env=cloud_env).stdout)
    assert (status["sources"], status["manifests"], status["errors"]) == (3, 2, 1)


def test_search_and_reindex_with_the_vector_index(
    cloud_env: dict[str, str], pg_server: PgServer, index_table: str, tmp_path: Path
) -> None:
    env = cloud_env | {"VECTOR_DB_DSN": pg_server.dsn, "VECTOR_DB_TABLE": index_table}
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "leave.md").write_text("# Отпуск\n\nСотрудник получает 28 дней отпуска.")
    (tmp_path / "coffee.txt").write_text("Descale the coffee machine monthly.")
    assert cli("embed", str(tmp_path), env=env).returncode == 0

    found = cli("search", "Descale the coffee machine monthly.", "--top", "1", env=env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith("0.0328  incoming/coffee.txt#0  (vector #1, keyword #1)")
    by_vector = cli(
        "search", "Descale the coffee machine monthly.", "--top", "1", "--mode", "vector", env=env
    )
    assert by_vector.stdout.startswith("1.0000  incoming/coffee.txt#0  (vector #1, keyword #-)")
    # Keyword mode needs no embeddings API: none is reachable here.
    no_api = env | {"EMBEDDINGS_URL": "http://127.0.0.1:9/unreachable"}
    by_word = cli("search", "ОТПУСКА", "--mode", "keyword", "--filter", '{"lang": "ru"}', env=no_api)
    assert by_word.returncode == 1, by_word.stdout  # the filter keeps nothing: no chunk has lang
    by_word = cli(
        "search", "ОТПУСКА", "--mode", "keyword", "--filter", "{}", "--score-threshold", "0", env=no_api
    )
    assert by_word.returncode == 0, by_word.stderr
    assert "incoming/hr/leave.md#0" in by_word.stdout
    assert "coffee" not in by_word.stdout
    bad = cli("search", "x", "--filter", "[1]", env=env)
    assert bad.returncode != 0
    assert "--filter must be a JSON object" in bad.stderr
    narrowed = cli("search", "Descale the coffee machine monthly.", "--prefix", "incoming/hr/", env=env)
    assert narrowed.returncode == 0, narrowed.stderr
    assert "incoming/hr/leave.md#0" in narrowed.stdout
    assert "coffee" not in narrowed.stdout

    rebuilt = cli("reindex", "--recreate", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = json.loads(rebuilt.stdout[rebuilt.stdout.index("{\n") :])
    assert (report["written"], report["failed"]) == (2, 0)

    again = cli("reindex", env=env).stdout  # the rows match: current, written all the same
    again = json.loads(again[again.index("{\n") :])
    assert (again["current"], again["stale"], again["missing"], again["written"]) == (2, 0, 0, 2)
    assert "pgvector-local-secret" not in rebuilt.stdout + rebuilt.stderr

    without = cli("reindex", env=cloud_env)
    assert without.returncode == 2
    assert "VECTOR_DB_DSN" in without.stderr


def test_embed_into_a_local_folder(cloud_env: dict[str, str], tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "note.md").write_text("# Note\n\nSomething worth finding.")
    (source / "note.md.metadata.json").write_text('{"lang": "en"}')
    result = cli("embed", str(source), "--out", str(tmp_path / "out"), env=cloud_env)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (tmp_path / "out" / "note.md.jsonl").read_text().splitlines()]
    assert records[0]["id"] == "note.md#0"
    assert records[0]["metadata"] == {"lang": "en"}
    assert not (tmp_path / "out" / "note.md.metadata.json.jsonl").exists()
    assert len(records[0]["embedding"]) == 256
    manifest = json.loads((tmp_path / "out" / "note.md.manifest.json").read_text())
    assert manifest["chunks"] == len(records)
    # stdout is the result alone, one JSON summary (`embedpipe embed ... | jq`); logs go to stderr
    # (without SOURCE_BUCKET, the runtime logs how instances share the quota: not on stdout).
    bucketless = {name: value for name, value in cloud_env.items() if name != "SOURCE_BUCKET"}
    again = cli("embed", str(source), "--out", str(tmp_path / "again"), env=bucketless)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["files"], summary["chunks"]) == (1, len(records))


def test_invoke_runs_the_handler_on_an_event_file(cloud_env: dict[str, str], tmp_path: Path) -> None:
    put = cli("put", str(ROOT / "devstack/samples/onboarding.en.md"), "incoming/onboarding.md", env=cloud_env)
    assert put.returncode == 0, put.stderr
    event = cli(
        "generate-event", "storage", "--bucket", cloud_env["SOURCE_BUCKET"], "--key", "incoming/onboarding.md"
    ).stdout
    (tmp_path / "event.json").write_text(event)

    result = cli("invoke", str(tmp_path / "event.json"), env=cloud_env)

    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout[result.stdout.index("{\n") :])
    assert reply["documents"][0]["outcome"] == "embedded"
    assert '"msg": "invocation_done"' in result.stdout
    listing = cli("ls", "embeddings/", env=cloud_env).stdout
    assert "embeddings/incoming/onboarding.md.manifest.json" in listing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "/nonexistent/event.json"], "cannot read an event"),
        (["embed", "/nonexistent/folder"], "no such file or folder"),
        (["search", "   "], "the query is empty"),
        (["cat", "incoming/absent"], "no such key"),
    ],
)
def test_bad_inputs_are_clear_errors(cloud_env: dict[str, str], args: list[str], message: str) -> None:
    result = cli(*args, env=cloud_env)
    assert result.returncode == 2
    assert message in result.stderr


def test_invoke_reports_a_retry_signal(cloud_env: dict[str, str], tmp_path: Path) -> None:
    broken = {**cloud_env, "S3_ENDPOINT": "http://127.0.0.1:9"}
    event = cli("generate-event", "storage", "--bucket", "b", "--key", "incoming/x.md").stdout
    result = cli("invoke", "-", env=broken, stdin=event)
    assert result.returncode == 1
    assert "a trigger would deliver it again" in result.stderr


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["ls"], "its S3"),
        (["status"], "its S3"),
        (["search", "q"], "its S3"),
        (["embed", "README.md"], "its S3"),
    ],
)
def test_a_command_without_the_local_stack_says_so_at_once(args: list[str], what: str) -> None:
    env = user_env()
    started = time.monotonic()
    result = cli(*args, env=env)
    assert result.returncode == 2
    assert time.monotonic() - started < 15  # not 33 s of retries against a closed port
    assert "the local stack is not running" in result.stderr
    assert f"http://127.0.0.1:{env['LOCAL_S3_PORT']} ({what})" in result.stderr
    assert "make run" in result.stderr


def test_embed_out_without_any_model_says_what_to_set(tmp_path: Path) -> None:
    env = user_env()
    result = cli("embed", "README.md", "--out", str(tmp_path), env=env)
    assert result.returncode == 2
    assert f"http://127.0.0.1:{env['LOCAL_EMBEDDINGS_PORT']} (its embedding model)" in result.stderr
    assert "YC_IAM_TOKEN" in result.stderr


def test_embed_out_uses_the_users_own_api_and_needs_no_bucket(tmp_path: Path) -> None:
    """The user's token and endpoint are used as given: no local API key over the token, no local
    384 dimensions against a 256-dimension model, no S3 settings, no metadata service."""
    source = tmp_path / "note.md"
    source.write_text("# Note\n\nSomething worth finding, embedded with the user's own credentials.")
    token = "t1.user-token-for-the-cli-test-0123456789"
    with YandexEmulator(EmulatorConfig(rps=1000)) as emulator:
        env = user_env(YC_IAM_TOKEN=token, YC_FOLDER_ID="b1gmine", EMBEDDINGS_URL=emulator.url)
        result = cli("embed", str(source), "--out", str(tmp_path / "out"), env=env)
        authorizations = set(emulator.stats.authorizations)
    assert result.returncode == 0, result.stderr
    assert authorizations == {f"Bearer {token}"}
    record = json.loads((tmp_path / "out" / "note.md.jsonl").read_text().splitlines()[0])
    assert len(record["embedding"]) == 256
    assert record["model"] == "emb://b1gmine/text-search-doc/latest"
    assert token not in result.stdout + result.stderr
