"""Unit: log lines are single-line JSON in Cloud Logging's shape (a stream per trigger, none over
64 KB), and secrets never reach them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from devstack.events import http_event
from embedding_pipeline.logs import MAX_LINE_BYTES, configure_logging, get_logger, register_secret
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.settings import load_settings
from handlers import dispatch


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    yield buffer
    configure_logging()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_event_with_msg_and_cloud_level(stream: io.StringIO) -> None:
    log = get_logger()
    log.info("source_embedded", chunks=3, key="incoming/отчёт.md")
    log.warning("source_parked", reason="binary")
    first, second = lines(stream)
    assert first["msg"] == "source_embedded"
    assert first["level"] == "INFO"
    assert first["chunks"] == 3
    assert first["key"] == "incoming/отчёт.md"
    assert second["level"] == "WARN"
    assert "ts" in first


def test_bound_context_reaches_every_line(stream: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-42", trigger="storage"):
        get_logger().info("x")
    (line,) = lines(stream)
    assert (line["request_id"], line["trigger"]) == ("req-42", "storage")


def test_registered_secrets_are_masked_anywhere(stream: io.StringIO) -> None:
    secret = "t1.9euelZqXyMinvoice-secret-token-value"
    register_secret(secret)
    get_logger().error("call_failed", detail=f"header Bearer {secret} refused", nested={"inner": [secret]})
    output = stream.getvalue()
    assert secret not in output
    assert "***" in output


def test_secret_named_fields_and_token_shapes_are_masked(stream: io.StringIO) -> None:
    get_logger().info(
        "debugging",
        authorization="Api-Key AQVN1234567890abcdefghijklmnop",
        api_key="whatever",
        headers={"X-Api-Key": "key-in-a-header", "access_token": "t1.short"},
        text="unregistered t1.abcdefghijklmnopqrstuvwxyz0123 and AQVNabcdefghijklmnopqrstuvwxyz",
    )
    output = stream.getvalue()
    for leaked in (
        "AQVN1234567890",
        "whatever",
        "t1.abcdefghijklmnop",
        "AQVNabcdefghij",
        "key-in-a-header",
        "t1.short",
    ):
        assert leaked not in output


def test_counts_named_like_secrets_are_kept(stream: io.StringIO) -> None:
    get_logger().info("invocation_done", tokens=1234, billed_tokens=5, token_count=7)
    (line,) = lines(stream)
    assert (line["tokens"], line["billed_tokens"], line["token_count"]) == (1234, 5, 7)


def test_exceptions_are_logged_by_type_and_message(stream: io.StringIO) -> None:
    get_logger().error("failed", error=ValueError("bad thing"))
    (line,) = lines(stream)
    assert line["error"] == "ValueError: bad thing"


def test_level_filter_drops_debug_at_info() -> None:
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    get_logger().debug("hidden")
    get_logger().info("shown")
    configure_logging()
    assert [json.loads(line)["msg"] for line in buffer.getvalue().splitlines()] == ["shown"]


def test_a_lone_surrogate_leaves_one_json_line_not_an_exception() -> None:
    """An event's JSON may hold "\\ud800"; a UTF-8 stdout cannot print it as it is."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    configure_logging("INFO", stream=stream)
    get_logger().info("http_request", path="/v1/\ud800 путь")
    configure_logging()
    (line,) = raw.getvalue().decode("utf-8").splitlines()
    assert json.loads(line)["path"] == "/v1/\ud800 путь"


def test_every_line_names_its_stream(stream: io.StringIO) -> None:
    """Outside an invocation the stream is `unknown`; inside, the trigger kind dispatch bound."""
    get_logger().warning("http_api_keys_unset")
    with structlog.contextvars.bound_contextvars(stream_name="queue"):
        get_logger().info("x")
    assert [line["stream_name"] for line in lines(stream)] == ["unknown", "queue"]


async def test_dispatch_binds_the_trigger_as_the_stream(stream: io.StringIO) -> None:
    async with Runtime(load_settings(yc_folder_id="b1gtest", metrics=False)) as runtime:
        await dispatch(runtime, http_event("GET", "/healthz", shape="direct"), None)
        await dispatch(runtime, {"hello": "world"}, None)
    found = {(line["msg"], line["stream_name"]) for line in lines(stream)}
    assert ("http_request", "http") in found
    assert ("event_unrecognised", "unknown") in found


@pytest.mark.parametrize("unit", ["a", "ж", "😀", "\n"])
def test_a_long_line_is_cut_to_fit_keeping_both_ends(stream: io.StringIO, unit: str) -> None:
    """1, 2 or 4 bytes a character, or 2 in JSON (an escaped newline): the line fits all the same."""
    text = "HEAD" + unit * 100_000 + "TAIL"
    get_logger().error("document_failed", reason=text, key="incoming/a.md", detail={"short": "kept"})
    raw = stream.getvalue()
    assert raw.count("\n") == 1
    assert len(raw.encode()) <= MAX_LINE_BYTES + 1
    (line,) = lines(stream)
    reason = str(line["reason"])
    assert reason.startswith("HEAD")
    assert reason.endswith("TAIL")
    assert "characters cut]" in reason
    assert len(reason) > MAX_LINE_BYTES // 8  # cut as much as needed, not to a stub
    assert (line["key"], line["detail"], line["msg"]) == (
        "incoming/a.md",
        {"short": "kept"},
        "document_failed",
    )


def test_several_long_strings_are_each_cut_as_needed(stream: io.StringIO) -> None:
    get_logger().info("x", first="a" * 50_000, nested={"second": ["b" * 40_000]}, third="c" * 1_000)
    raw = stream.getvalue()
    assert len(raw.encode()) <= MAX_LINE_BYTES + 1
    (line,) = lines(stream)
    assert line["third"] == "c" * 1_000  # short enough once the long ones are cut
    assert "characters cut]" in str(line["first"])


def test_a_line_of_many_small_fields_keeps_its_own_fields(stream: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-7", stream_name="timer"):
        get_logger().info(
            "report", rows=[{"key": f"incoming/{n}.md", "n": n} for n in range(20_000)], count=3
        )
    (line,) = lines(stream)
    assert len(stream.getvalue().encode()) <= MAX_LINE_BYTES + 1
    assert (line["msg"], line["request_id"], line["stream_name"], line["count"]) == (
        "report",
        "req-7",
        "timer",
        3,
    )
    assert "rows" not in line
    assert "only its short fields are kept" in str(line["line_cut"])


def test_a_secret_is_masked_before_the_line_is_cut(stream: io.StringIO) -> None:
    """Cutting first could leave half a token that no longer looks like one."""
    secret = "t1.cut-secret-token-value-0123456789"
    register_secret(secret)
    text = "x" * 30_000 + secret + "y" * 60_000
    get_logger().error("failed", detail=text)
    assert "cut-secret" not in stream.getvalue()


def test_a_line_of_too_many_short_fields_keeps_the_lines_own(stream: io.StringIO) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-8", stream_name="queue"):
        get_logger().info("wide", **{f"field_{n}": "v" * 100 for n in range(2_000)})
    (line,) = lines(stream)
    assert len(stream.getvalue().encode()) <= MAX_LINE_BYTES + 1
    assert set(line) == {"msg", "level", "ts", "stream_name", "request_id", "line_cut"}
    assert (line["msg"], line["stream_name"], line["request_id"]) == ("wide", "queue", "req-8")
