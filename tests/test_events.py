"""Unit: devstack's event builders stay in step with the real samples in tests/events/.

Each builder's event has its sample's structure: the same keys at every level (the envelope, the
message metadata and details, the HTTP request and its context), holding values of the same JSON
types. Maps keyed by the caller's data (headers, query and path parameters, queue message
attributes) count as one value. A field the samples themselves show as optional (carried by some
samples of a shared level and not by others) may be there or not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.events import http_event, queue_event, storage_event, timer_event
from handlers import event_kind
from tests.support import EVENTS_DIR, load_event

KeyPath = tuple[str, ...]

DATA_MAPS = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "params",
    "multiValueParams",
    "pathParams",
    "pathParameters",
    "parameters",
    "attributes",
    "message_attributes",
}
MESSAGE = ("messages", "[]")
JSON_HEADERS = {"Content-Type": "application/json", "X-Api-Key": "test-key-1"}

# Each sample, the kind the router must see, and the builder's event for the same request.
BUILT: dict[str, tuple[str, dict[str, Any]]] = {
    "storage_object_create": ("storage", storage_event("ObjectCreate", "my-docs", "incoming/reports/q1.md")),
    "storage_object_create_legacy": ("storage", storage_event("ObjectCreate", "my-docs", "incoming/a.txt")),
    "storage_object_delete": ("storage", storage_event("ObjectDelete", "my-docs", "incoming/reports/q1.md")),
    "storage_object_update": ("storage", storage_event("ObjectUpdate", "my-docs", "incoming/reports/q1.md")),
    "queue_batch": ("queue", queue_event(json.dumps({"key": "incoming/report.md"}))),
    "queue_legacy": ("queue", queue_event(json.dumps({"id": "faq-1", "text": "Как оформить отпуск?"}))),
    "timer": ("timer", timer_event({"action": "reconcile"})),
    "timer_no_payload": ("timer", timer_event()),
    "http_direct": (
        "http",
        http_event("POST", "/v1/embeddings", JSON_HEADERS, '{"input": "привет"}', shape="direct"),
    ),
    "http_gateway_v0": (
        "http",
        http_event("POST", "/v1/embeddings?trace=1", JSON_HEADERS, '{"input": ["one", "two"]}', shape="0.1"),
    ),
    "http_gateway_v1": (
        "http",
        http_event(
            "POST", "/v1/embeddings", JSON_HEADERS, '{"input": "hello"}', shape="1.0", base64_body=True
        ),
    ),
}


def structure(value: Any, path: KeyPath = ()) -> dict[KeyPath, str]:
    """Every key path below `value`, with the JSON type found there; list items share the step "[]"."""
    if isinstance(value, dict) and not (path and path[-1] in DATA_MAPS):
        children = [(str(key), child) for key, child in value.items()]
    elif isinstance(value, list):
        children = [("[]", child) for child in value]
    else:
        children = []
    found: dict[KeyPath, str] = {}
    for step, child in children:
        found[(*path, step)] = type(child).__name__
        found.update(structure(child, (*path, step)))
    return found


def optional_fields() -> set[KeyPath]:
    """Fields some samples carry at a level they all share and others lack: trigger metadata, and
    the HTTP request context."""
    shared_levels = {
        (*MESSAGE, "event_metadata"): [name for name, (kind, _) in BUILT.items() if kind != "http"],
        ("requestContext",): [name for name, (kind, _) in BUILT.items() if kind == "http"],
    }
    optional: set[KeyPath] = set()
    for level, names in shared_levels.items():
        below = [
            {key_path for key_path in structure(load_event(name)) if key_path[: len(level)] == level}
            for name in names
        ]
        optional |= set().union(*below) - below[0].intersection(*below[1:])
    return optional


def test_every_sample_has_a_builder_counterpart() -> None:
    assert set(BUILT) == {sample.stem for sample in EVENTS_DIR.glob("*.json")}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_the_builder_event_has_the_samples_structure(name: str) -> None:
    _, built = BUILT[name]
    expected, got, optional = structure(load_event(name)), structure(built), optional_fields()
    not_built = {key_path for key_path in expected.keys() - got.keys() if key_path not in optional}
    not_in_the_sample = {key_path for key_path in got.keys() - expected.keys() if key_path not in optional}
    assert not_built == set()
    assert not_in_the_sample == set()
    # The same JSON types: this sample's, or another sample's for an optional field this one lacks.
    seen = {
        key_path: json_type for other in BUILT for key_path, json_type in structure(load_event(other)).items()
    }
    assert got == {key_path: expected.get(key_path, seen.get(key_path)) for key_path in got}


@pytest.mark.parametrize("name", sorted(BUILT))
def test_the_router_recognises_builder_and_sample_alike(name: str) -> None:
    kind, built = BUILT[name]
    sample = load_event(name)
    assert event_kind(built) == event_kind(sample) == kind
    if kind != "http":
        assert (
            built["messages"][0]["event_metadata"]["event_type"]
            == sample["messages"][0]["event_metadata"]["event_type"]
        )


def test_a_generated_queue_event_names_the_local_stacks_queue() -> None:
    """`embedpipe event queue` and the stack's trigger describe the same queue, as in the cloud."""
    from devstack.local_env import LOCAL_QUEUE  # noqa: PLC0415

    [message] = queue_event('{"key": "incoming/a.md"}')["messages"]
    assert message["details"]["queue_id"] == f"yrn:yc:ymq:ru-central1:local:{LOCAL_QUEUE}"
    assert LOCAL_QUEUE == "local-jobs"
