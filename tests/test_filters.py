"""Unit and functional: search filters (embedding_pipeline/vector_index/filters.py).

Unit: what is refused, and how it is said. Functional: every rule of the module's docstring against
a real PostgreSQL (tests/postgres.py), over a table of its own `(id int, metadata jsonb)` with a GIN
index; and a property test holding the compiled SQL to a pure-Python reading of the same rules.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.pgserver import PgServer
from embedding_pipeline.finite_json import NotFinite, loads_finite
from embedding_pipeline.vector_index.filters import FilterError, ParsedFilter, compile_filter, parse_filter

ROWS: dict[int, dict[str, Any]] = {
    1: {"dept": "hr", "year": 2024, "price": 10, "date": "2024-03-01", "tags": ["a", "b"], "a.b": "dotted"},
    2: {"dept": "hr", "year": 2023, "price": 9.5, "date": "2023-12-31", "draft": None},
    3: {"dept": "it", "year": "2024", "price": "10", "date": "2025-01-01", "flag": True},
    4: {"dept": "it", "year": 2025.0, "meta": {"x": 1, "y": 2}, "flag": 1},
    5: {},
}
EVERY = set(ROWS)


async def make_table(connection: asyncpg.Connection[asyncpg.Record], rows: dict[int, Any]) -> str:
    table = f"filters_{uuid.uuid4().hex[:12]}"
    await connection.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, metadata jsonb NOT NULL)")
    await connection.execute(f"CREATE INDEX ON {table} USING gin (metadata)")
    await insert(connection, table, rows)
    return table


async def insert(connection: asyncpg.Connection[asyncpg.Record], table: str, rows: dict[int, Any]) -> None:
    await connection.execute(
        f"INSERT INTO {table} SELECT * FROM unnest($1::int[], $2::jsonb[])",
        list(rows),
        [json.dumps(metadata) for metadata in rows.values()],
    )


async def matching(connection: asyncpg.Connection[asyncpg.Record], table: str, raw: object) -> set[int]:
    arguments: list[Any] = []
    condition = compile_filter(parse_filter(raw), arguments)
    found = await connection.fetch(f"SELECT id FROM {table} WHERE {condition or 'true'}", *arguments)
    return {row["id"] for row in found}


@pytest.fixture
async def table(vector_db: asyncpg.Connection[asyncpg.Record]) -> AsyncIterator[str]:
    name = await make_table(vector_db, ROWS)
    yield name
    await vector_db.execute(f"DROP TABLE {name}")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, EVERY),
        ({}, EVERY),
        # Shorthand: containment, as before; numbers by value, types kept apart, null only if stored.
        ({"dept": "hr"}, {1, 2}),
        ({"dept": "hr", "year": 2024}, {1}),
        ({"year": 2025}, {4}),
        ({"flag": True}, {3}),
        ({"flag": 1}, {4}),
        ({"draft": None}, {2}),
        ({"tags": ["a"]}, {1}),
        ({"tags": "a"}, set()),
        ({"meta": {"x": 1}}, {4}),
        ({"meta": {}}, {4}),
        ({"a.b": "dotted"}, {1}),
        ({"a": {"b": "dotted"}}, set()),
        ({"dept": {"$eq": "it"}}, {3, 4}),
        # Comparisons: numbers by value, strings by code point, other types never.
        ({"price": {"$gt": 9.5}}, {1}),
        ({"price": {"$gte": 9.5}}, {1, 2}),
        ({"price": {"$lt": "2"}}, {3}),
        ({"year": {"$gt": 2023}}, {1, 4}),
        ({"year": {"$gt": "2000"}}, {3}),
        ({"date": {"$gte": "2024-01-01", "$lt": "2025-01-01"}}, {1}),
        ({"date": {"$lte": "2023-12-31"}}, {2}),
        # $ne, $nin: a row without the field matches; $exists narrows it.
        ({"dept": {"$ne": "hr"}}, {3, 4, 5}),
        ({"dept": {"$ne": "hr", "$exists": True}}, {3, 4}),
        ({"draft": {"$ne": None}}, {1, 3, 4, 5}),
        ({"dept": {"$in": ["hr", "it"]}}, {1, 2, 3, 4}),
        ({"year": {"$in": [2024, "2024"]}}, {1, 3}),
        ({"year": {"$nin": [2024, 2023]}}, {3, 4, 5}),
        ({"draft": {"$exists": True}}, {2}),
        ({"draft": {"$exists": False}}, {1, 3, 4, 5}),
        ({"$or": [{"dept": "it"}, {"price": {"$lt": 10}}]}, {2, 3, 4}),
        ({"$and": [{"dept": "hr"}, {"$or": [{"year": 2023}, {"tags": ["b"]}]}]}, {1, 2}),
        ({"dept": "hr", "$or": [{"year": 2023}, {"flag": True}]}, {2}),
    ],
)
async def test_each_rule_against_postgresql(
    vector_db: asyncpg.Connection[asyncpg.Record], table: str, raw: object, expected: set[int]
) -> None:
    assert await matching(vector_db, table, raw) == expected


async def test_field_names_and_values_are_only_ever_arguments(
    vector_db: asyncpg.Connection[asyncpg.Record], table: str
) -> None:
    key = f"a'); DROP TABLE {table}; --"
    value = "x' OR '1'='1"
    await insert(vector_db, table, {6: {key: value}, 7: {key: 5}})
    filters = [
        {key: value},
        {key: {"$in": [value]}},
        {key: {"$gte": value}},
        {key: {"$exists": True}, "$or": [{key: {"$lte": 5}}, {key: value}]},
    ]
    for raw in filters:
        arguments: list[Any] = []
        condition = compile_filter(parse_filter(raw), arguments)
        assert condition is not None
        assert "DROP" not in condition
        assert "'1'" not in condition
        assert await matching(vector_db, table, raw) >= {6}
    assert await matching(vector_db, table, {key: {"$ne": value}}) == EVERY | {7}
    assert await vector_db.fetchval(f"SELECT count(*) FROM {table}") == 7


@pytest.mark.parametrize(
    "raw", [{"dept": "hr"}, {"dept": {"$in": ["hr", "it"]}}, {"draft": {"$exists": True}}]
)
async def test_the_gin_index_serves_equality_in_and_exists(
    vector_db: asyncpg.Connection[asyncpg.Record], table: str, raw: object
) -> None:
    arguments: list[Any] = []
    condition = compile_filter(parse_filter(raw), arguments)
    async with vector_db.transaction():
        await vector_db.execute("SET LOCAL enable_seqscan = off")
        plan = await vector_db.fetch(f"EXPLAIN SELECT id FROM {table} WHERE {condition}", *arguments)
    assert "Bitmap Index Scan" in "\n".join(row[0] for row in plan)


def test_arguments_are_numbered_after_those_already_there() -> None:
    arguments: list[Any] = ["vector", "model"]
    parsed = parse_filter({"dept": "hr", "price": {"$gt": 1, "$in": [1, 2]}, "x": {"$exists": False}})
    condition = compile_filter(parsed, arguments, column="metadata")
    assert condition is not None
    assert arguments[:2] == ["vector", "model"]
    assert arguments[2:] == ['{"dept": "hr"}', "price", "1", ['{"price": 1}', '{"price": 2}'], "x"]
    assert all(f"${number}" in condition for number in range(3, 8))
    assert "$8" not in condition


def test_an_empty_filter_compiles_to_nothing() -> None:
    arguments: list[Any] = []
    assert parse_filter(None) == parse_filter({}) == ParsedFilter()
    assert compile_filter(ParsedFilter(), arguments) is None
    assert arguments == []


def test_the_column_is_a_plain_name() -> None:
    with pytest.raises(ValueError, match="not a plain column name"):
        compile_filter(parse_filter({"a": 1}), [], column="metadata; DROP TABLE x")


def nested(levels: int) -> dict[str, Any]:
    raw: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        raw = {"$and": [raw]}
    return raw


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"price": {"$gt": {"a": 1}}}, "filter.price.$gt: expects a number or a string, got an object"),
        ({"price": {"$lte": True}}, "filter.price.$lte: expects a number or a string, got a boolean"),
        ({"price": {"$lt": None}}, "filter.price.$lt: expects a number or a string, got null"),
        (
            {"x": {"$regex": "a"}},
            "filter.x.$regex: unknown operator; a field's are $eq, $ne, $gt, $gte, $lt,",
        ),
        ({"$foo": []}, "filter.$foo: unknown operator; a filter's are $and, $or"),
        ({"x": {"$and": []}}, "filter.x.$and: unknown operator; a field's are $eq"),
        (
            {"x": {"$in": []}},
            "filter.x.$in: expects an array of 1 to 100 strings, numbers, booleans or nulls, got an",
        ),
        ({"x": {"$nin": list(range(101))}}, "filter.x.$nin: expects an array of 1 to 100 strings"),
        (
            {"x": {"$in": "hr"}},
            "filter.x.$in: expects an array of 1 to 100 strings, numbers, booleans or nulls, got a s",
        ),
        (
            {"x": {"$in": [1, [1]]}},
            "filter.x.$in[1]: expects a string, number, boolean or null, got an array of 1",
        ),
        ({"x": {"$exists": 1}}, "filter.x.$exists: expects true or false, got a number"),
        ({"$and": []}, "filter.$and: expects an array of 1 to 100 filters, got an empty array"),
        ({"$or": {"a": 1}}, "filter.$or: expects an array of 1 to 100 filters, got an object"),
        ({"$or": [{"a": 1}, {}]}, "filter.$or[1]: an empty filter, which every row matches"),
        ({"$or": ["a"]}, "filter.$or[0]: expects an object, got a string"),
        (nested(6), "filter.$and[0].$and[0].$and[0].$and[0].$and[0].$and: $and and $or nest at most 5 deep"),
        ({f"f{n}": n for n in range(65)}, "filter.f64: a filter holds at most 64 conditions"),
        ({"x": {"$in": ["a" * 1001]}}, "filter.x.$in[0]: longer than 1000 characters"),
        ({"": 1}, "filter.: a field name is 1 to 256 characters"),
        ({"k" * 257: 1}, f"filter.{'k' * 40}…: a field name is 1 to 256 characters"),
        ({"x\x00": 1}, "filter: a key: holds \\u0000, which PostgreSQL cannot store"),
        ({"x": "a\ud800"}, "filter.x: not valid Unicode: it holds a lone surrogate such as \\ud800"),
        ({"x": {"$ne": {"y": ["\ud800"]}}}, "filter.x.$ne.y[0]: not valid Unicode"),
        (
            {"x": {"$gt": NotFinite("NaN")}},
            "filter.x.$gt: NaN is not a finite number: JSON and the index hold none",
        ),
        ({"x": float("-inf")}, "filter.x: -inf is not a finite number"),
        ({"x": {"$eq": 10**400}}, "filter.x.$eq: a number too large for a double"),
        (
            {"x": {"$gt": 1, "y": 2}},
            "filter.x.y: a field's object holds either operators or a value, not both",
        ),
        ({"x": {"y": {"$gt": 1}}}, "filter.x.y.$gt: operators apply to a field, not inside its value"),
        ({"x": [[[[[[1]]]]]]}, "filter.x[0][0][0][0][0]: arrays and objects in a value nest at most 5 deep"),
        ({"x": {"$eq": {"a": set()}}}, "filter.x.$eq.a: expects a JSON value, got a Python set"),
        ([1], "filter: expects an object, got an array of 1"),
        ("dept=hr", "filter: expects an object, got a string"),
    ],
)
def test_what_is_refused_names_its_place(raw: object, message: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse_filter(raw)
    assert str(caught.value).startswith(message)
    assert str(caught.value).startswith(caught.value.field + ": ")
    assert isinstance(caught.value, ValueError)
    str(caught.value).encode()  # printable: a reply or a log line can hold it


def test_non_finite_literals_from_a_body_are_refused_naming_the_field() -> None:
    raw = loads_finite(b'{"x": {"$in": [1, Infinity]}, "y": {"$lt": 1e999}}')
    with pytest.raises(FilterError, match=r"^filter\.x\.\$in\[1\]: Infinity is not a finite number"):
        parse_filter(raw)


def test_the_bounds_themselves_are_accepted() -> None:
    parse_filter(nested(5))
    parse_filter({f"f{n}": n for n in range(64)})
    parse_filter({"k" * 256: "v" * 1000, "x": {"$in": list(range(100))}, "y": [[[[[1]]]]]})


# The pure-Python reading of the module's rules, which the SQL must agree with.
def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(value: Any) -> Decimal:
    return Decimal(json.dumps(value))  # as jsonb reads it: the decimal that was written


def contains(have: object, want: object) -> bool:
    """jsonb's @> below the top level: objects by their pairs, arrays by their items, scalars equal."""
    if isinstance(want, dict):
        return isinstance(have, dict) and all(k in have and contains(have[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and all(any(contains(h, w) for h in have) for w in want)
    if is_number(have) and is_number(want):
        return number(have) == number(want)
    return not isinstance(have, dict | list) and type(have) is type(want) and have == want


def holds(row: dict[str, Any], field: str, operator: str, operand: Any) -> bool:
    present, have = field in row, row.get(field)
    if operator in ("$eq", "$ne"):
        return (present and contains(have, operand)) == (operator == "$eq")
    if operator in ("$in", "$nin"):
        return (present and any(contains(have, item) for item in operand)) == (operator == "$in")
    if operator == "$exists":
        return present is operand
    left: str | Decimal
    right: str | Decimal
    if isinstance(operand, str):
        if not isinstance(have, str):
            return False
        left, right = have, operand
    else:
        if not is_number(have):
            return False
        left, right = number(have), number(operand)
    return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[operator]  # type: ignore[operator]


def matches(raw: dict[str, Any], row: dict[str, Any]) -> bool:
    for key, value in raw.items():
        if key == "$and":
            ok = all(matches(item, row) for item in value)
        elif key == "$or":
            ok = any(matches(item, row) for item in value)
        elif isinstance(value, dict) and any(name.startswith("$") for name in value):
            ok = all(holds(row, key, operator, operand) for operator, operand in value.items())
        else:
            ok = holds(row, key, "$eq", value)
        if not ok:
            return False
    return True


FIELDS = st.sampled_from(["a", "b", "a.b", "it's"])
NUMBERS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0, 1e16, 10**16 + 1, 1.0000000000000002])
)
STRINGS = st.text(alphabet="ab01-:Zé😀", max_size=3)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=5,
)
OPERATIONS = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), VALUES),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, min_size=1, max_size=3)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), st.one_of(NUMBERS, STRINGS)),
    st.tuples(st.just("$exists"), st.booleans()),
)
CONDITIONS = st.one_of(
    VALUES,
    st.lists(OPERATIONS, min_size=1, max_size=2).map(dict),
)


def filters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    plain = st.dictionaries(FIELDS, CONDITIONS, min_size=1, max_size=2)
    if depth == 0:
        return plain
    grouped = st.builds(
        lambda fields, operator, items: {**fields, operator: items},
        st.dictionaries(FIELDS, CONDITIONS, max_size=1),
        st.sampled_from(["$and", "$or"]),
        st.lists(st.deferred(lambda: filters(depth - 1)), min_size=1, max_size=2),
    )
    return st.one_of(plain, grouped)


ROW_SETS = st.lists(st.dictionaries(FIELDS, VALUES, max_size=4), max_size=8)


@pytest.fixture
def loop_and_connection(pg_server: PgServer) -> Iterator[tuple[asyncio.Runner, Any, str]]:
    with asyncio.Runner() as runner:
        connection = runner.run(asyncpg.connect(pg_server.dsn_for("vectors", superuser=True)))
        table = runner.run(make_table(connection, {}))
        try:
            yield runner, connection, table
        finally:
            runner.run(connection.execute(f"DROP TABLE {table}"))
            runner.run(connection.close())


def test_the_sql_agrees_with_the_rules_on_random_rows_and_filters(
    loop_and_connection: tuple[asyncio.Runner, Any, str],
) -> None:
    runner, connection, table = loop_and_connection

    async def found(rows: list[dict[str, Any]], raw: dict[str, Any]) -> set[int]:
        await connection.execute(f"TRUNCATE {table}")
        await insert(connection, table, dict(enumerate(rows)))
        return await matching(connection, table, raw)

    @settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(rows=ROW_SETS, raw=filters(3))
    def agrees(rows: list[dict[str, Any]], raw: dict[str, Any]) -> None:
        expected = {index for index, row in enumerate(rows) if matches(raw, row)}
        assert runner.run(found(rows, raw)) == expected, raw

    agrees()
