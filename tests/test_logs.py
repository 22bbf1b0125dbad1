"""Unit: log lines are single-line JSON in Cloud Logging's shape, and secrets never reach them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from embedding_pipeline.logs import configure_logging, get_logger, register_secret


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
