"""Pydantic's validation errors told in one line: where the first problem is, and what it is."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

# The error type of a message that names its own place ("input[1] is empty"): said as it is.
INVALID_INPUT = "invalid_input"


def invalid_input(message: str) -> PydanticCustomError:
    """A validator's error whose message already names the field, written in the caller's terms."""
    return PydanticCustomError(INVALID_INPUT, message)


def validation_message(
    exc: ValidationError, *, json_body: bool = False, prefer_given: bool = False, tagged: bool = False
) -> str:
    """One line naming the field and the problem: `where: what`, or `what` alone when the error is
    about the whole input or its message names its own place (`invalid_input`).

    `json_body`: the input was a JSON document (`validate_json`); one that is not JSON, or holds a
    lone surrogate, is said to be so whatever else is wrong.
    `prefer_given`: an error about a field that was given says more of what the sender meant than a
    "missing" or "extra" one, so it comes first.
    `tagged`: the model is a tagged union, whose tag is the location's first part: not a field.
    """
    errors = exc.errors()
    if json_body:
        types = {error["type"] for error in errors}
        if "json_invalid" in types:
            return "body is not JSON"
        if "string_unicode" in types:
            return "body is not valid Unicode: it holds a lone surrogate"
    if prefer_given:
        errors = [error for error in errors if error["type"] not in ("missing", "extra_forbidden")] or errors
    error = errors[0]
    location = error["loc"][1:] if tagged else error["loc"]
    where = ".".join(str(part) for part in location)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where and error["type"] != INVALID_INPUT else message
