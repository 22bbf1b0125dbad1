"""Unit: output keys, key safety, reusable-vector lines, manifest parsing, the deadline."""

from __future__ import annotations

import json
from array import array

import pytest

from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.records import (
    checkpoint_line,
    error_key,
    known_vector,
    manifest_key,
    parse_manifest,
    records_key,
    validate_source_key,
)
from tests.support import FakeContext


def test_output_keys_follow_the_contract() -> None:
    key = "incoming/папка/Отчёт 2025.md"
    assert records_key("embeddings/", key) == "embeddings/incoming/папка/Отчёт 2025.md.jsonl"
    assert manifest_key("embeddings/", key) == "embeddings/incoming/папка/Отчёт 2025.md.manifest.json"
    assert error_key("embeddings/", key) == "embeddings/_errors/incoming/папка/Отчёт 2025.md.json"


@pytest.mark.parametrize("key", ["incoming/a b.txt", "incoming/Отчёт.md", "incoming/x+y%20z#?.txt", "a..b/c"])
def test_ordinary_keys_are_accepted(key: str) -> None:
    validate_source_key(key)


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "incoming/../secret", "..", "incoming/a\nb", "incoming/\x00", "k" * 1025]
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKey):
        validate_source_key(key)


def test_known_vector_reads_checkpoint_lines_of_the_same_model_only() -> None:
    line = checkpoint_line(text_hash="h1", vector=array("d", [0.25, -1.0]), tokens=5, model="m1")
    assert known_vector(line, model="m1") == ("h1", array("d", [0.25, -1.0]), 5)
    assert known_vector(line, model="m2") is None
    assert known_vector(line, model="m1", wanted={"other"}) is None


@pytest.mark.parametrize(
    "line", [b"", b"{", b'{"content_hash": "h"}', b"[1, 2]", json.dumps({"x": 1}).encode()]
)
def test_damaged_lines_are_skipped(line: bytes) -> None:
    assert known_vector(line, model="m1") is None


@pytest.mark.parametrize("data", [None, b"", b"not json", b'{"manifest_version": 1}'])
def test_unreadable_manifest_counts_as_absent(data: bytes | None) -> None:
    assert parse_manifest(data) is None


def test_deadline_from_context_keeps_a_margin() -> None:
    deadline = Deadline.from_context(FakeContext(timeout_s=100), margin_s=10)
    assert 89 < deadline.remaining() <= 90


def test_deadline_margin_never_takes_more_than_a_quarter() -> None:
    deadline = Deadline.from_context(FakeContext(timeout_s=8), margin_s=10)
    assert 5.9 < deadline.remaining() <= 6


def test_context_without_remaining_time_means_no_practical_deadline() -> None:
    assert Deadline.from_context(object(), margin_s=10).remaining() > 3600
