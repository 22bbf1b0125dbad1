"""Unit: the output contract (keys built and parsed back, key safety, reusable-vector lines, manifest
parsing) and the deadline."""

from __future__ import annotations

import json
from array import array

import pytest

from embedding_pipeline.bucket_policy import output_layout
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.outputs.document_keys import validate_source_key
from embedding_pipeline.outputs.layout import OutputKey, OutputLayout
from embedding_pipeline.outputs.lines import checkpoint_line, known_vector
from embedding_pipeline.outputs.models import Manifest
from embedding_pipeline.outputs.store import parse_output
from embedding_pipeline.settings import load_settings
from tests.support import context


def test_output_keys_follow_the_contract() -> None:
    key = "incoming/папка/Отчёт 2025.md"
    keys = OutputLayout("docs", "embeddings/").document(key)
    assert keys.records == "embeddings/incoming/папка/Отчёт 2025.md.jsonl"
    assert keys.manifest == "embeddings/incoming/папка/Отчёт 2025.md.manifest.json"
    assert keys.error == "embeddings/_errors/incoming/папка/Отчёт 2025.md.json"
    assert (
        keys.checkpoint_part("0a1b2c3d", 7)
        == "embeddings/_checkpoints/incoming/папка/Отчёт 2025.md/0a1b2c3d-000007.jsonl"
    )


@pytest.mark.parametrize("document", ["incoming/a.md", "incoming/папка/b c.json", "_inline/faq-1"])
def test_every_output_key_parses_back_to_its_kind_and_document(document: str) -> None:
    layout = OutputLayout("docs", "embeddings/")
    keys = layout.document(document)
    built = {
        keys.records: "records",
        keys.manifest: "manifest",
        keys.error: "error",
        keys.checkpoint_part("0a1b2c3d", 1): "checkpoint",
    }
    for key, kind in built.items():
        assert layout.parse(key) == OutputKey(kind, document)  # type: ignore[arg-type]
    assert layout.parse(keys.records).inline is document.startswith("_inline/")  # type: ignore[union-attr]


def test_bucket_wide_outputs_parse_back_and_other_keys_do_not() -> None:
    layout = OutputLayout("docs", "embeddings/")
    assert layout.parse(layout.queue_error("m/1 ?")) == OutputKey("queue_error")
    assert layout.queue_error("m/1 ?") == "embeddings/_errors/_queue/m_1__.json"
    assert layout.parse(layout.report("2026-11-29T10:00:00.000Z")) == OutputKey("report")
    assert layout.parse(layout.cursor) == OutputKey("cursor")
    for other in (
        "incoming/a.md",
        "embeddings/notes.txt",
        "embeddings/_errors/x.txt",
        "embeddings/_checkpoints/x",
    ):
        assert layout.parse(other) is None


def test_outputs_go_to_the_output_bucket_or_beside_their_source() -> None:
    beside = load_settings(yc_folder_id="f")
    elsewhere = load_settings(yc_folder_id="f", output_bucket="vectors")
    assert output_layout(beside, "docs") == OutputLayout("docs", "embeddings/")
    assert output_layout(elsewhere, "docs") == OutputLayout("vectors", "embeddings/")
    assert OutputLayout("docs", "embeddings/").holds("docs", "embeddings/a.jsonl")
    assert not OutputLayout("vectors", "embeddings/").holds("docs", "embeddings/a.jsonl")


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
    assert known_vector(line, model="m1", dimensions=2) == ("h1", array("d", [0.25, -1.0]), 5)
    assert known_vector(line, model="m2", dimensions=2) is None
    assert known_vector(line, model="m1", dimensions=2, wanted={"other"}) is None


def test_known_vector_refuses_a_vector_of_another_shape() -> None:
    line = checkpoint_line(text_hash="h1", vector=array("d", [0.25, -1.0]), tokens=5, model="m1")
    assert known_vector(line, model="m1", dimensions=3) is None  # a setting changed the length
    infinite = json.dumps({"content_hash": "h1", "model": "m1", "tokens": 1, "embedding": [1.0, 1e999]})
    assert known_vector(infinite.encode(), model="m1", dimensions=2) is None


@pytest.mark.parametrize(
    "line", [b"", b"{", b'{"content_hash": "h"}', b"[1, 2]", json.dumps({"x": 1}).encode()]
)
def test_damaged_lines_are_skipped(line: bytes) -> None:
    assert known_vector(line, model="m1", dimensions=2) is None


@pytest.mark.parametrize("data", [None, b"", b"not json", b'{"manifest_version": 1}'])
def test_unreadable_manifest_counts_as_absent(data: bytes | None) -> None:
    assert parse_output(data, Manifest) is None


def test_deadline_from_context_keeps_a_margin() -> None:
    deadline = Deadline.from_context(context(timeout_s=100), margin_s=10)
    assert 89 < deadline.remaining() <= 90


def test_deadline_margin_never_takes_more_than_a_quarter() -> None:
    deadline = Deadline.from_context(context(timeout_s=8), margin_s=10)
    assert 5.9 < deadline.remaining() <= 6


def test_context_without_remaining_time_means_no_practical_deadline() -> None:
    assert Deadline.from_context(object(), margin_s=10).remaining() > 3600
