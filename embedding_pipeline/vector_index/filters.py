"""A search's `filter` over a chunk's `metadata` (one flat jsonb object): read and bounded once
(`parse_filter`), then compiled to a parameterised SQL condition (`compile_filter`).

    {"dept": "hr", "year": {"$gte": 2020},
     "$or": [{"lang": {"$in": ["ru", "en"]}}, {"draft": {"$exists": false}}]}

What each part means:
- A field is a key of `metadata` as written, never a path: "a.b" is the key `a.b`. The fields and
  the `$and`/`$or` of one object must all hold.
- `{"f": v}` is `{"f": {"$eq": v}}`: `metadata @> {"f": v}`, jsonb containment as before, which the
  GIN index on metadata serves. A scalar matches the same scalar (numbers by value, 1 is 1.0; true
  is not 1; null matches a stored null, never a missing field); an object or array matches one that
  holds it (["a"] matches ["a", "b"]).
- `$ne`, `$nin` are `$eq`, `$in` negated: a row without the field matches, as in MongoDB (Chroma
  differs); add `{"$exists": true}` beside them to require the field.
- `$in`: any of 1 to 100 scalars, each as `$eq`; GIN-served too.
- `$gt $gte $lt $lte`: a number or a string. Numbers compare by value, strings by code point (ISO
  dates and times compare as dates); a field holding another JSON type, or none, never matches.
- `$exists`: true, the key is there (null included); false, it is not. GIN-served.
- `$and`, `$or`: a non-empty array of non-empty filters.

Bounds: `$and`/`$or` nest at most 5 deep; at most 64 conditions (a field's operator or a shorthand
pair) in all; an array or object in a value at most 100 items and 5 levels; a field name 1 to 256
characters, not starting with `$`; a string, or a key inside a value, at most 1,000 characters.
Refused anywhere: `\\u0000` (PostgreSQL's text and jsonb hold none), a lone surrogate (`\\ud800`,
no UTF-8 form), `NaN`/`Infinity`/a number beyond a double (a `NotFinite` from `loads_finite`).
Anything else is a `FilterError` naming the place (`filter.price.$gt`), which the HTTP layer
answers with a 400.

Values and field names travel as query arguments; only the column's name, argument numbers and
fixed operators are placed in the text.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from embedding_pipeline.finite_json import NotFinite
from embedding_pipeline.text_safety import lone_surrogate_at, printable

FIELD_OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
GROUP_OPERATORS = ("$and", "$or")
DEPTH_LIMIT = 5  # `$and`/`$or` within each other; and levels of arrays and objects in a value
CONDITION_LIMIT = 64
ITEM_LIMIT = 100  # values of `$in`/`$nin`, filters of `$and`/`$or`, items of an array or object value
FIELD_LIMIT = 256  # characters of a field name
STRING_LIMIT = 1000  # characters of a string, or of a key inside a value
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_COLUMN = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?")
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (type(None), "null"),
    (bool, "a boolean"),  # before int: a bool is one
    ((int, float, NotFinite), "a number"),
    (str, "a string"),
    (dict, "an object"),
)
_SHOWN_KEY = 40  # characters of a key quoted in an error's place


class FilterError(ValueError):
    """A filter this module refuses; `str(exc)` is the caller's message, `field` its place."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True, slots=True)
class Condition:
    field: str  # a key of metadata
    operator: str  # one of FIELD_OPERATORS
    # $eq/$ne: any JSON value; $in/$nin: a tuple of scalars; comparisons: a number or a string;
    # $exists: a bool
    operand: Any


@dataclass(frozen=True, slots=True)
class Group:
    operator: str  # "$and" or "$or"
    clauses: tuple[Condition | Group, ...]


@dataclass(frozen=True, slots=True)
class ParsedFilter:
    clauses: tuple[Condition | Group, ...] = ()  # all must hold; none: every row matches


def parse_filter(raw: object) -> ParsedFilter:
    """`raw` (a JSON object, as parsed) checked against the rules above; None or {}: no filter."""
    if raw is None:
        return ParsedFilter()
    return ParsedFilter(_Reader().filter(raw, "filter", 0))


def compile_filter(parsed: ParsedFilter, arguments: list[Any], column: str = "metadata") -> str | None:
    """A SQL boolean expression over the jsonb `column` for `parsed`, appending its values to
    `arguments` (numbered `$len(arguments)` as they are appended); None for an empty filter."""
    if not _COLUMN.fullmatch(column):
        raise ValueError(f"not a plain column name: {column!r}")
    if not parsed.clauses:
        return None
    return _joined(parsed.clauses, "AND", arguments, column)


class _Reader:
    """One filter's reading: the count of conditions so far is what bounds the whole."""

    def __init__(self) -> None:
        self.conditions = 0

    def filter(self, raw: object, where: str, groups: int) -> tuple[Condition | Group, ...]:
        if not isinstance(raw, dict):
            raise FilterError(where, f"expects an object, got {_kind(raw)}")
        clauses: list[Condition | Group] = []
        for key, value in raw.items():
            _check_key(key, where)
            place = f"{where}.{_shown(key)}"
            if key in GROUP_OPERATORS:
                clauses.append(self.group(key, value, place, groups + 1))
            elif key.startswith("$"):
                raise FilterError(place, f"unknown operator; a filter's are {', '.join(GROUP_OPERATORS)}")
            else:
                clauses.extend(self.field(key, value, place))
        return tuple(clauses)

    def group(self, operator: str, raw: object, where: str, groups: int) -> Group:
        if groups > DEPTH_LIMIT:
            raise FilterError(where, f"$and and $or nest at most {DEPTH_LIMIT} deep")
        if not isinstance(raw, list) or not raw or len(raw) > ITEM_LIMIT:
            problem = f"expects an array of 1 to {ITEM_LIMIT} filters, got {_kind(raw)}"
            raise FilterError(where, problem)
        clauses = []
        for index, item in enumerate(raw):
            if item == {}:
                raise FilterError(f"{where}[{index}]", "an empty filter, which every row matches")
            clauses.append(Group("$and", self.filter(item, f"{where}[{index}]", groups)))
        return Group(operator, tuple(clauses))

    def field(self, name: str, raw: object, where: str) -> list[Condition]:
        if not name or len(name) > FIELD_LIMIT:
            raise FilterError(where, f"a field name is 1 to {FIELD_LIMIT} characters")
        if not (isinstance(raw, dict) and any(isinstance(key, str) and key.startswith("$") for key in raw)):
            return [self.counted(Condition(name, "$eq", _value(raw, where, 0)), where)]
        conditions = []
        for operator, operand in raw.items():
            _check_key(operator, where)
            place = f"{where}.{_shown(operator)}"
            if not operator.startswith("$"):
                raise FilterError(place, "a field's object holds either operators or a value, not both")
            if operator not in FIELD_OPERATORS:
                raise FilterError(place, f"unknown operator; a field's are {', '.join(FIELD_OPERATORS)}")
            conditions.append(
                self.counted(Condition(name, operator, _operand(operator, operand, place)), place)
            )
        return conditions

    def counted(self, condition: Condition, where: str) -> Condition:
        self.conditions += 1
        if self.conditions > CONDITION_LIMIT:
            raise FilterError(where, f"a filter holds at most {CONDITION_LIMIT} conditions")
        return condition


def _operand(operator: str, raw: object, where: str) -> Any:
    if operator in ("$eq", "$ne"):
        return _value(raw, where, 0)
    if operator == "$exists":
        if not isinstance(raw, bool):
            raise FilterError(where, f"expects true or false, got {_kind(raw)}")
        return raw
    if operator in ("$in", "$nin"):
        if not isinstance(raw, list) or not raw or len(raw) > ITEM_LIMIT:
            problem = f"expects an array of 1 to {ITEM_LIMIT} strings, numbers, booleans or nulls"
            raise FilterError(where, f"{problem}, got {_kind(raw)}")
        for index, item in enumerate(raw):
            if isinstance(item, dict | list):
                raise FilterError(
                    f"{where}[{index}]", f"expects a string, number, boolean or null, got {_kind(item)}"
                )
        return tuple(_value(item, f"{where}[{index}]", 0) for index, item in enumerate(raw))
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | NotFinite):
        raise FilterError(where, f"expects a number or a string, got {_kind(raw)}")
    return _value(raw, where, 0)


def _value(raw: object, where: str, depth: int) -> Any:
    """`raw` when it is a JSON value jsonb can hold, within the bounds."""
    if isinstance(raw, NotFinite) or (isinstance(raw, float) and not math.isfinite(raw)):
        literal = raw.literal if isinstance(raw, NotFinite) else str(raw)
        raise FilterError(where, f"{literal} is not a finite number: JSON and the index hold none")
    if isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) > sys.float_info.max:
        raise FilterError(where, "a number too large for a double")
    if isinstance(raw, str):
        _check_text(raw, where)
        if len(raw) > STRING_LIMIT:
            raise FilterError(where, f"longer than {STRING_LIMIT} characters")
    elif isinstance(raw, dict | list):
        return _container(raw, where, depth)
    elif raw is not None and not isinstance(raw, bool | int | float):
        raise FilterError(where, f"expects a JSON value, got {_kind(raw)}")
    return raw


def _container(raw: dict[Any, Any] | list[Any], where: str, depth: int) -> Any:
    if depth >= DEPTH_LIMIT:
        raise FilterError(where, f"arrays and objects in a value nest at most {DEPTH_LIMIT} deep")
    if len(raw) > ITEM_LIMIT:
        raise FilterError(where, f"an array or object in a value holds at most {ITEM_LIMIT} items")
    if isinstance(raw, list):
        return [_value(item, f"{where}[{index}]", depth + 1) for index, item in enumerate(raw)]
    value = {}
    for key, item in raw.items():
        _check_key(key, where)
        if len(key) > STRING_LIMIT:
            raise FilterError(where, f"a key is longer than {STRING_LIMIT} characters")
        if key.startswith("$"):
            raise FilterError(f"{where}.{_shown(key)}", "operators apply to a field, not inside its value")
        value[key] = _value(item, f"{where}.{_shown(key)}", depth + 1)
    return value


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str):
        raise FilterError(where, f"keys are strings, got {_kind(key)}")
    _check_text(key, f"{where}: a key")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise FilterError(where, "holds \\u0000, which PostgreSQL cannot store")
    if lone_surrogate_at(text) is not None:
        raise FilterError(where, "not valid Unicode: it holds a lone surrogate such as \\ud800")


def _shown(key: str) -> str:
    """A key as an error's place shows it: printable, and short."""
    shown = printable(key.replace("\x00", "\\u0000"))
    return shown if len(shown) <= _SHOWN_KEY else shown[:_SHOWN_KEY] + "…"


def _kind(value: object) -> str:
    """A value's JSON type, as an error names what it got."""
    if isinstance(value, list):
        return f"an array of {len(value)}" if value else "an empty array"
    for types, name in _KINDS:
        if isinstance(value, types):
            return name
    return f"a Python {type(value).__name__}"


def _joined(clauses: tuple[Condition | Group, ...], joiner: str, arguments: list[Any], column: str) -> str:
    parts = [_sql(clause, arguments, column) for clause in clauses]
    return parts[0] if len(parts) == 1 else "(" + f" {joiner} ".join(parts) + ")"


def _sql(clause: Condition | Group, arguments: list[Any], column: str) -> str:
    if isinstance(clause, Group):
        return _joined(clause.clauses, "AND" if clause.operator == "$and" else "OR", arguments, column)

    def argument(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments)}"

    field, operator, operand = clause.field, clause.operator, clause.operand
    if operator in ("$eq", "$ne"):
        sql = f"{column} @> {argument(_json({field: operand}))}::jsonb"
    elif operator in ("$in", "$nin"):
        sql = f"{column} @> ANY({argument([_json({field: item}) for item in operand])}::jsonb[])"
    elif operator == "$exists":
        sql = f"{column} ? {argument(field)}::text"
    else:
        # Typed first: jsonb orders across types (every number above every string), and ->> casts nothing.
        key = argument(field)
        symbol = _COMPARISONS[operator]
        if isinstance(operand, str):
            kind, compared = (
                "string",
                f'({column} ->> {key}::text) COLLATE "C" {symbol} {argument(operand)}::text',
            )
        else:
            kind, compared = "number", f"({column} -> {key}::text) {symbol} {argument(_json(operand))}::jsonb"
        # A missing key makes both NULL: false instead, so that the condition is two-valued.
        return f"COALESCE(jsonb_typeof({column} -> {key}::text) = '{kind}' AND {compared}, false)"
    negated = operator in ("$ne", "$nin") or (operator == "$exists" and not operand)
    return f"NOT ({sql})" if negated else sql


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)
