"""Secrets never leave the process: `redact` (unit), the index client's errors for DSNs whose password
holds any punctuation (a real asyncpg, no server needed to fail), and every sink such an error
reaches: the log, the `_index/` mark in the bucket, the reconcile report, the HTTP reply.

The passwords are made of pieces (`Zq7`, `Xw9`, `Kp4`) no message holds by chance: a parser that
misreads a DSN quotes a piece of it, so each piece is looked for, not only the whole password."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from devstack.events import timer_event
from devstack.s3server import free_port
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import VectorIndexError, as_document_failure
from embedding_pipeline.logs import get_logger
from embedding_pipeline.redact import MASK, redact, register_secret
from embedding_pipeline.vector_index.failures import unusable_dsn
from embedding_pipeline.vector_index.postgres import VectorIndex
from handlers import dispatch
from tests.support import RuntimeFactory, call, context, load_event, read_json, request_event

# Every punctuation a password may hold, and letters beyond ASCII.
PUNCTUATION = [*"/#?@:%&=+;,!$'\" ~*()[]", "п", "密", "é", "😀"]
PIECES = ("Zq7", "Xw9", "Kp4")


def password_with(char: str) -> str:
    return char.join(PIECES)


def leaks(text: str, password: str) -> list[str]:
    """What of the password shows in `text`: the whole, its encoded form, or any piece."""
    return [part for part in (password, quote(password, safe=""), *PIECES) if part in text]


@pytest.mark.parametrize("char", PUNCTUATION)
@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "percent-encoded"])
def test_redact_masks_a_dsn_password_whatever_it_holds(char: str, encoded: bool) -> None:
    password = password_with(char)
    written = quote(password, safe="") if encoded else password
    for text in (
        f"postgresql://embedpipe:{written}@db.example:6432/vectors?sslmode=verify-full",
        f"could not connect to postgres://embedpipe:{written}@db.example/vectors, giving up",
        f"index: ValueError: postgresql://embedpipe:{written}@db.example:6432/vectors\nnext line",
    ):
        redacted = redact(text)
        assert not leaks(redacted, password), redacted
        assert f"embedpipe:{MASK}@db.example" in redacted  # the user and host still say which database
    assert "next line" in redact(f"postgresql://u:{written}@h/db\nnext line")


def test_redact_masks_password_keywords_registered_secrets_and_token_shapes() -> None:
    assert redact("host=db password='Zq7 Xw9' dbname=v") == f"host=db password={MASK} dbname=v"
    assert redact("postgresql://u@h/db?password=Zq7%2FXw9&sslmode=require") == (
        f"postgresql://u@h/db?password={MASK}&sslmode=require"
    )
    register_secret("Zq7 Xw9/Kp4 registered")
    assert redact("said: Zq7 Xw9/Kp4 registered.") == f"said: {MASK}."
    assert redact("said: Zq7%20Xw9%2FKp4%20registered.") == f"said: {MASK}."  # as it stands in a URL
    assert redact("t1.abcdefghijklmnopqrstuvwxyz and AQVNabcdefghijklmnopqrstuvwxyz") == f"{MASK} and {MASK}"
    assert redact("a short one: abc", ["abc"]) == "a short one: abc"  # under 6 characters: not masked


def test_an_unexpected_failure_is_redacted_before_it_is_cut_short() -> None:
    dsn = f"postgresql://embedpipe:{password_with('/')}@db.example/vectors"
    failure = as_document_failure(RuntimeError("x" * 480 + dsn))
    assert failure is not None
    assert not leaks(str(failure), password_with("/"))


def test_a_driver_message_quoting_a_piece_of_the_dsn_loses_the_quote() -> None:
    dsn = "postgresql://embedpipe:Zq7[Xw9@db.example:6432/vectors"
    error = unusable_dsn(ValueError("invalid IPv6 address in the connection URI: 'embedpipe:Zq7[Xw9'"), dsn)
    assert not leaks(str(error), "Zq7[Xw9")
    assert str(error).startswith("VECTOR_DB_DSN is not usable: invalid IPv6 address")


@pytest.mark.parametrize("char", PUNCTUATION)
async def test_the_index_clients_errors_hold_no_piece_of_the_password(char: str) -> None:
    """asyncpg itself, given the DSN: a parse error, or a refused connection (nothing listens)."""
    password = password_with(char)
    port = free_port()
    for dsn in (
        f"postgresql://embedpipe:{password}@127.0.0.1:{port}/vectors",
        f"postgresql://embedpipe:{password}@127.0.0.1:{port}",
        f"postgresql://embedpipe:{quote(password, safe='')}@127.0.0.1:{port}/vectors",
    ):
        index = VectorIndex(dsn, password=None, table="chunks", dimensions=4)
        with pytest.raises(VectorIndexError) as raised:
            await index.summary("bucket")
        assert not leaks(str(raised.value), password), (dsn, str(raised.value))
        await index.aclose()


async def test_an_unencoded_separator_in_the_password_is_refused_with_the_fix() -> None:
    index = VectorIndex(
        "postgresql://embedpipe:Zq7/Xw9#Kp4@127.0.0.1:5432/vectors", password=None, table="t", dimensions=4
    )
    with pytest.raises(VectorIndexError, match="percent-encode it") as raised:
        await index.summary("bucket")
    assert "VECTOR_DB_PASSWORD" in str(raised.value)


def test_a_vector_index_error_is_redacted_as_it_is_made() -> None:
    error = VectorIndexError("reading the index: postgresql://embedpipe:Zq7/Xw9#Kp4@db.example/vectors")
    assert not leaks(str(error), "Zq7/Xw9#Kp4")


def test_log_lines_are_redacted_whatever_carries_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = "postgresql://embedpipe:Zq7/Xw9#Kp4@db.example/vectors"
    log = get_logger()
    log.error("failed", reason=f"parsing {dsn}", error=ValueError(dsn), extra={"nested": [dsn]})
    assert not leaks(capsys.readouterr().out, "Zq7/Xw9#Kp4")


async def test_a_dsn_that_asyncpg_cannot_parse_leaks_into_no_sink(
    make_runtime: RuntimeFactory,
    storage: ObjectStorage,
    s3_bucket: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: the password in no log line, no `_index/` mark, no reconcile report, no reply."""
    password = "Zq7/Xw9#Kp4?Zq7@Xw9"
    for number, dsn in enumerate(
        (
            f"postgresql://embedpipe:{password}@127.0.0.1:{free_port()}/vectors",  # refused before asyncpg
            f"postgresql://embedpipe:{password}@127.0.0.1:{free_port()}",  # asyncpg's own parse error
        )
    ):
        runtime = make_runtime(source_bucket=s3_bucket, vector_db_dsn=dsn, vector_db_table="chunks")
        key = f"incoming/handbook-{number}.md"
        await storage.put(s3_bucket, key, b"# Handbook\n\nLeave is twenty-eight days a year.")

        upload = await dispatch(
            runtime, load_event("storage_object_create", bucket=s3_bucket, keys=[key]), context()
        )
        assert (upload["documents"][0]["outcome"], upload["documents"][0]["index"]) == ("embedded", "pending")
        mark = await read_json(storage, s3_bucket, f"embeddings/_index/{key}.json")
        report = await dispatch(runtime, timer_event(None), context())
        status, reply = await call(runtime, request_event("POST", "/v1/search", {"query": "leave"}))

        assert "VECTOR_DB" in mark["reason"]  # the reason says what to fix
        assert report["index"]["error"]
        assert status == 503
        logged = capsys.readouterr().out
        assert "index_write_failed" in logged
        for sink in (json.dumps(mark), json.dumps(report), json.dumps(reply), logged):
            assert not leaks(sink, password), sink


def test_a_secret_inside_another_does_not_break_the_longer_one_apart() -> None:
    register_secret("inner-secret")
    token = "t1.context-inner-secret-value"
    assert redact(f"bad token: Bearer {token}", [token]) == "bad token: Bearer ***"
