"""Functional: `POST /v1/search` input that JSON or PostgreSQL cannot hold is the caller's error (400,
the field named), answered before anything is paid for and without the database: the index here is
configured but unreachable, so a 503 would mean the input reached it."""

from __future__ import annotations

import pytest

from devstack.s3server import free_port
from embedding_pipeline.runtime import Runtime
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, request_event


@pytest.fixture
def unreachable_index(make_runtime: RuntimeFactory, s3_bucket: str) -> Runtime:
    dsn = f"postgresql://embedpipe:pgvector-local-secret@127.0.0.1:{free_port()}/vectors"
    return make_runtime(source_bucket=s3_bucket, vector_db_dsn=dsn)


LONG = "x" * 1001
DEEP = "filter.a.a.a.a.a.a: arrays and objects"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"query": "q", "filter": {"score": NaN}}', "filter.score: NaN"),
        ('{"query": "q", "filter": {"score": Infinity}}', "filter.score: Infinity"),
        ('{"query": "q", "filter": {"score": -Infinity}}', "filter.score: -Infinity"),
        ('{"query": "q", "filter": {"score": 1e999}}', "filter.score: 1e999"),
        ('{"query": "q", "filter": {"tags": ["a", NaN]}}', "filter.tags[1]: NaN"),
        ('{"query": "q", "filter": {"lang": "r\\u0000u"}}', "filter.lang: holds \\u0000"),
        ('{"query": "q", "filter": {"la\\u0000ng": "ru"}}', "filter: a key: holds \\u0000"),
        ('{"query": "q", "filter": {"lang": "\\ud800"}}', "filter.lang: not valid Unicode"),
        ('{"query": "q", "filter": {"\\udc80": "ru"}}', "filter: a key: not valid Unicode"),
        ('{"query": "q", "filter": {"a": {"b": "\\ud800x"}}}', "filter.a.b: not valid Unicode"),
        (f'{{"query": "q", "filter": {{"lang": "{LONG}"}}}}', "filter.lang: longer than 1000 characters"),
        (f'{{"query": "q", "filter": {{"{LONG}": 1}}}}', "filter.xxxxxxxx"),  # the name, cut, then why
        (
            '{"query": "q", "filter": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
            "filter.a.a.a.a.a.a: arrays and objects",
        ),
        ('{"query": "q\\u0000q"}', "query: holds \\u0000"),
        ('{"query": "' + "слово " * 1400 + '", "mode": "keyword"}', "query: longer than 8000 characters"),
        ('{"query": "q\\ud800"}', "query: not valid Unicode"),
        ('{"query": "q", "prefix": "incoming/\\u0000"}', "prefix: holds \\u0000"),
        ('{"query": "q", "prefix": "incoming/\\udfff"}', "prefix: not valid Unicode"),
        ('{"query": "q", "top_k": NaN}', "top_k: "),
    ],
)
async def test_input_the_index_cannot_hold_is_a_400_naming_the_field(
    unreachable_index: Runtime, api: FakeEmbeddingsAPI, body: str, field: str
) -> None:
    status, reply = await call(unreachable_index, request_event("POST", "/v1/search", body))
    assert (status, reply["error"]["code"], reply["error"]["type"]) == (
        400,
        "invalid_request",
        "invalid_request_error",
    ), reply
    assert reply["error"]["message"].startswith(field), reply["error"]["message"]
    assert api.requests == 0  # refused before the query was embedded


async def test_ordinary_filters_reach_the_index_and_only_a_down_index_is_503(
    unreachable_index: Runtime, api: FakeEmbeddingsAPI
) -> None:
    body = {
        "query": "отпуск",
        "filter": {"lang": "ru", "score": 0.5, "tags": ["a", None, True], "x": "y" * 1000, "n": 10**30},
    }
    status, reply = await call(unreachable_index, request_event("POST", "/v1/search", body))
    assert (status, reply["error"]["code"]) == (503, "index_unavailable")
    assert api.requests == 1  # the query was embedded: the input was fine, the index was down
