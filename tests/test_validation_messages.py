"""Unit: one line for a pydantic validation error, naming the field and the problem.

The default serves the trigger envelopes and the HTTP request models; `json_body`, `prefer_given`
and `tagged` together read a work message's body (queue messages and HTTP submissions).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from embedding_pipeline.messages import WORK_MESSAGE
from handlers.events import HttpEvent, TimerMessage
from handlers.http.embeddings import EmbeddingsRequest
from handlers.validation import invalid_input, validation_message


class Inner(BaseModel):
    count: Annotated[int, Field(gt=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    inner: Inner | None = None


def error_of(validate: Callable[[Any], object], value: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate(value)
    return caught.value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "name: Field required"),
        ({"name": 1}, "name: Input should be a valid string"),
        ({"name": "a", "inner": {"count": 0}}, "inner.count: Input should be greater than 0"),
        ({"name": "a", "other": 1}, "other: Extra inputs are not permitted"),
        ([], "Input should be a valid dictionary or instance of Strict"),
    ],
)
def test_the_field_is_named_before_the_problem(value: Any, message: str) -> None:
    assert validation_message(error_of(Strict.model_validate, value)) == message


def test_trigger_envelopes_name_the_field_path() -> None:
    exc = error_of(TimerMessage.model_validate, {"event_metadata": {}, "details": {"payload": 3}})
    assert validation_message(exc) == "event_metadata.event_type: Field required"
    assert validation_message(error_of(HttpEvent.model_validate, {})) == "httpMethod: Field required"


def test_a_value_errors_prefix_is_dropped() -> None:
    exc = error_of(EmbeddingsRequest.model_validate, {"input": "x", "model": "\ud800"})
    assert validation_message(exc) == "model: not valid Unicode: it holds a lone surrogate such as \\ud800"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": ["a", " "]}, "input[1] is empty"),
        ({"input": 5}, "input must be a string or a list of strings"),
    ],
)
def test_an_invalid_input_error_names_its_own_place(body: Any, message: str) -> None:
    assert validation_message(error_of(EmbeddingsRequest.model_validate, body)) == message


def test_invalid_input_is_an_error_of_its_own_type() -> None:
    error = invalid_input("query is empty")
    assert (error.type, error.message()) == ("invalid_input", "query is empty")


def test_json_body_says_the_body_is_not_json_or_not_unicode() -> None:
    adapter = TypeAdapter(Strict)
    not_json = error_of(adapter.validate_json, "{")
    assert validation_message(not_json, json_body=True) == "body is not JSON"
    assert validation_message(not_json).startswith("Invalid JSON: ")
    # A lone surrogate in the text itself, not its JSON escape (which pydantic reads as not JSON).
    surrogate = error_of(adapter.validate_json, '{"name": "\ud800"}')
    assert validation_message(surrogate, json_body=True) == (
        "body is not valid Unicode: it holds a lone surrogate"
    )


def test_prefer_given_puts_a_given_fields_error_before_missing_and_extra() -> None:
    exc = error_of(Strict.model_validate, {"other": 1, "inner": {"count": 0}})
    assert validation_message(exc) == "name: Field required"
    assert validation_message(exc, prefer_given=True) == "inner.count: Input should be greater than 0"
    only_missing = error_of(Strict.model_validate, {})
    assert validation_message(only_missing, prefer_given=True) == "name: Field required"


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    name: str


PET: TypeAdapter[Cat | Dog] = TypeAdapter(
    Annotated[Annotated[Cat, Tag("cat")] | Annotated[Dog, Tag("dog")], Discriminator("kind")]
)


def test_tagged_drops_the_union_tag_from_the_location() -> None:
    exc = error_of(PET.validate_python, {"kind": "cat", "lives": "many"})
    assert (
        validation_message(exc)
        == "cat.lives: Input should be a valid integer, unable to parse string as an integer"
    )
    assert validation_message(exc, tagged=True) == (
        "lives: Input should be a valid integer, unable to parse string as an integer"
    )


NOT_A_KIND = (
    'a work message should be an object with "key" (an object reference), "id" and "text" (an inline '
    'record) or "reconcile" (a step of a reconcile sweep)'
)
# Each body and the reason a queue message or submission is parked or refused with.
WORK_BODIES = [
    ("", "body is not JSON"),
    ("{", "body is not JSON"),
    (
        "[1, 2]",
        NOT_A_KIND,
    ),
    (
        '{"foo": 1}',
        NOT_A_KIND,
    ),
    ('"\\ud800"', "body is not JSON"),
    ('{"id": "a", "text": "\\ud800"}', "body is not JSON"),
    ('{"id": "a", "text": "\ud800"}', "body is not valid Unicode: it holds a lone surrogate"),
    ('{"id": "a", "text": "   "}', "text: text is empty"),
    ('{"id": "../x", "text": "hi"}', "id: object key is absolute or contains a '.' or '..' segment"),
    ('{"id": "a"}', "text: Field required"),
    ('{"key": ""}', "key: String should have at least 1 character"),
    ('{"key": "incoming/a.md", "id": "a"}', "id: Extra inputs are not permitted"),
    (
        '{"key": "incoming/a.md", "extra": true, "continuation": -1}',
        "continuation: Input should be greater than or equal to 0",
    ),
    (
        '{"reconcile": {"bucket": "b", "step": 0}}',
        "reconcile.bucket: String should have at least 3 characters",
    ),
    (json.dumps({"id": "x", "text": "a" * 300_000}), "text: String should have at most 262144 characters"),
]


@pytest.mark.parametrize(("body", "reason"), WORK_BODIES)
def test_work_message_options_say_why_a_body_is_refused(body: str, reason: str) -> None:
    exc = error_of(WORK_MESSAGE.validate_json, body)
    assert validation_message(exc, json_body=True, prefer_given=True, tagged=True) == reason


def test_work_message_options_keep_a_value_errors_field() -> None:
    exc = error_of(WORK_MESSAGE.validate_json, '{"id": "a", "text": ""}')
    assert validation_message(exc, json_body=True, prefer_given=True, tagged=True) == "text: text is empty"
