"""Functional: keyword and hybrid search in a real PostgreSQL (tests/postgres.py), whose database is
created with lc_ctype = C as Managed PostgreSQL's are: case folding must not depend on it.

Rows are written through VectorIndex with vectors chosen by the test (3 dimensions), so each side's
ranking is known; the HTTP tests go through the function with the fake embeddings API."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import asyncpg
import pytest

from devstack.pgserver import PgServer
from embedding_pipeline.runtime import Runtime
from embedding_pipeline.vector_index.postgres import IndexRow, VectorIndex
from embedding_pipeline.vector_index.queries import Hit
from embedding_pipeline.vector_index.search_sql import Mode, SearchSpec
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, call, request_event
from tests.test_vector_index import in_index

if TYPE_CHECKING:
    Connection = asyncpg.Connection[asyncpg.Record]

MODEL = "emb://b1gtest/text-search-doc/latest"
FAR = (0.0, 0.0, 1.0)


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(value * value for value in values))
    return [value / norm for value in values]


def row(document: str, text: str, vector: Sequence[float] = FAR, chunk: int = 0) -> IndexRow:
    return (
        "b",
        document,
        chunk,
        f"{document}#{chunk}",
        "b",
        document,
        None,
        "e",
        MODEL,
        text,
        0,
        len(text),
        "{}",
        list(vector),
    )


async def _current() -> bool:
    return True


async def put(index: VectorIndex, rows: list[IndexRow]) -> None:
    for document in dict.fromkeys(row[1] for row in rows):

        async def stream(name: str = document) -> AsyncIterator[IndexRow]:
            for item in rows:
                if item[1] == name:
                    yield item

        await index.replace("b", document, stream(), still_current=_current)


@pytest.fixture
async def index(pg_server: PgServer, index_table: str) -> AsyncIterator[VectorIndex]:
    opened = VectorIndex(pg_server.dsn, password=None, table=index_table, dimensions=3)
    try:
        yield opened
    finally:
        await opened.aclose()


async def find(
    index: VectorIndex,
    text: str,
    mode: Mode = "keyword",
    vector: Sequence[float] | None = None,
    top_k: int = 5,
) -> list[Hit]:
    spec = SearchSpec(
        mode=mode,
        text=text,
        vector=None if mode == "keyword" else list(vector or FAR),
        top_k=top_k,
        model=MODEL,
    )
    return await index.search(spec)


async def test_the_database_folds_no_cyrillic_case_so_python_does(
    index: VectorIndex, vector_db: Connection
) -> None:
    # GIVEN the local stack's database, C locale like Managed PostgreSQL's default
    ctype = await vector_db.fetchval("SELECT datctype FROM pg_database WHERE datname = current_database()")
    assert ctype == "C"
    assert await vector_db.fetchval("SELECT lower('ОТПУСК')") == "ОТПУСК"  # the trap
    await put(
        index,
        [
            row("leave.md", "Отпуск оформляют за две недели."),
            row("hall.md", "В холле стоит ЁЛКА до конца января."),
            row("other.md", "Суточные платят за каждый день командировки."),
        ],
    )
    for query, expected in (
        ("отпуск", "leave.md"),
        ("ОТПУСКА", "leave.md"),
        ("елка", "hall.md"),
        ("Ёлки", "hall.md"),
    ):
        hits = await find(index, query)
        assert [hit.document for hit in hits] == [expected], query


@pytest.mark.parametrize(
    ("code", "near_miss"),
    [
        ("НЦ-4417", "НЦ-4471"),
        ("ERR_CONN_RESET", "ERR_CONN_REFUSED"),
        ("0x80070005", "0x80070050"),
        ("ABC-123/45", "ABC-123/54"),
    ],
)
async def test_an_exact_code_ranks_first_by_keyword_and_in_hybrid(
    index: VectorIndex, code: str, near_miss: str
) -> None:
    # The near miss is the vector's favourite: a 256-dim vector blurs one transposed digit.
    await put(
        index,
        [
            row("exact.md", f"Ошибка {code} при оплате счёта.", unit(0.9, 0.44, 0)),
            row("miss.md", f"Ошибка {near_miss} при оплате счёта.", unit(1, 0.4, 0)),
            row("plain.md", "Оплата счёта прошла без ошибок.", unit(1, 0.5, 0)),
        ],
    )
    by_keyword = await find(index, code)
    assert by_keyword[0].document == "exact.md"
    assert "miss.md" not in [hit.document for hit in by_keyword]  # a code is looked up whole
    hybrid = await find(index, code, "hybrid", unit(1, 0.4, 0))
    assert hybrid[0].document == "exact.md"
    assert (hybrid[0].keyword_rank, hybrid[1].document, hybrid[1].keyword_rank) == (1, "miss.md", None)


async def test_a_part_of_a_code_finds_it(index: VectorIndex) -> None:
    await put(index, [row("exact.md", "Заявка НЦ-4417 закрыта."), row("other.md", "Заявка НЦ-9 закрыта.")])
    assert [hit.document for hit in await find(index, "4417")] == ["exact.md"]


async def test_hybrid_finds_a_paraphrase_by_vector_and_says_how_each_hit_was_found(
    index: VectorIndex,
) -> None:
    await put(
        index,
        [
            row("leave.md", "Сотруднику положено двадцать восемь календарных дней.", unit(1, 0.1, 0)),
            row("word.md", "Отпуск: как подать заявление.", unit(0, 1, 0)),
        ],
    )
    query, vector = "сколько дней отдыха в году", unit(1, 0.12, 0)
    hybrid = await find(index, "сколько отдыха в году", "hybrid", vector)
    assert [(hit.document, hit.vector_rank, hit.keyword_rank) for hit in hybrid] == [
        ("leave.md", 1, None),
        ("word.md", 2, None),
    ]
    assert hybrid[0].score == pytest.approx(1 / 61, abs=1e-6)
    assert hybrid[0].vector_score == pytest.approx(
        sum(a * b for a, b in zip(vector, unit(1, 0.1, 0), strict=True)), abs=1e-5
    )
    # The same question sharing one word ("дней") with the chunk: hybrid's keyword side holds only a
    # code or every word, so one shared word of a paraphrase adds nothing; keyword mode finds it.
    hybrid = await find(index, query, "hybrid", vector)
    assert next((hit.document, hit.vector_rank, hit.keyword_rank) for hit in hybrid) == ("leave.md", 1, None)
    # Every word of the query in the chunk: both sides.
    hybrid = await find(index, "календарных дней", "hybrid", vector)
    assert next((hit.document, hit.vector_rank, hit.keyword_rank) for hit in hybrid) == ("leave.md", 1, 1)
    by_vector = await find(index, query, "vector", vector)
    assert [(hit.document, hit.keyword_rank) for hit in by_vector] == [("leave.md", None), ("word.md", None)]
    assert by_vector[0].score == by_vector[0].vector_score
    by_keyword = await find(index, query)
    assert [(hit.document, hit.vector_rank, hit.vector_score) for hit in by_keyword] == [
        ("leave.md", None, None)
    ]


async def test_reciprocal_rank_fusion_on_a_constructed_example(index: VectorIndex) -> None:
    # By vector: a, b, c, d (angles 0, 10, 20, 30 degrees). By keyword: d (the word three
    # times), c (twice), e (once); a and b lack it, e is far by vector yet inside the pool.
    def at(degrees: float) -> list[float]:
        return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees)), 0.0]

    await put(
        index,
        [
            row("a", "альфа", at(0)),
            row("b", "бета", at(10)),
            row("c", "гамма шлюз шлюз", at(20)),
            row("d", "дельта шлюз шлюз шлюз", at(30)),
            row("e", "эпсилон шлюз", at(80)),
        ],
    )
    hits = await find(index, "шлюз", "hybrid", at(0))
    expected = {
        "a": 1 / 61,
        "b": 1 / 62,
        "c": 1 / 63 + 1 / 62,
        "d": 1 / 64 + 1 / 61,
        "e": 1 / 65 + 1 / 63,
    }
    assert [hit.document for hit in hits] == sorted(expected, key=lambda name: -expected[name])
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.document], abs=1e-6), hit.document
    assert {hit.document: (hit.vector_rank, hit.keyword_rank) for hit in hits} == {
        "a": (1, None),
        "b": (2, None),
        "c": (3, 2),
        "d": (4, 1),
        "e": (5, 3),
    }


async def test_or_of_the_words_answers_questions_and_misses_fewer_than_and(
    index: VectorIndex, vector_db: Connection, index_table: str
) -> None:
    """The labelled set behind the choice of OR (docs/design.md): questions worded as users ask
    them, each with the chunk that answers it, which never holds every word of the question."""
    chunks = {
        "leave": "Ежегодный оплачиваемый отпуск составляет 28 календарных дней.",
        "trip": "Командировку оформляют приказом, суточные платят за каждый день.",
        "laptop": "Ноутбук выдают в первый рабочий день, пропуск оформляет охрана.",
        "salary": "Зарплату перечисляют на карту дважды в месяц: 10 и 25 числа.",
        "sick": "Больничный лист оформляют в поликлинике, отдел кадров получает его сам.",
        "vpn": "VPN connection drops with ERR_CONN_RESET: reinstall the client certificate.",
        "coffee": "Descale the coffee machine every two months with the descaler.",
        "parking": "Parking passes for the garage are issued by the facilities team.",
    }
    questions = {
        "сколько дней длится отпуск": "leave",
        "как оформить командировку в другой город": "trip",
        "когда выдают ноутбук новому сотруднику": "laptop",
        "в какие числа перечисляют зарплату": "salary",
        "куда сдавать больничный лист": "sick",
        "vpn keeps failing with ERR_CONN_RESET": "vpn",
        "how often should I descale the coffee machine": "coffee",
        "who issues parking passes": "parking",
    }
    await put(index, [row(name, text) for name, text in chunks.items()])
    or_first = and_found = 0
    for question, answer in questions.items():
        hits = await find(index, question, top_k=3)
        or_first += bool(hits) and hits[0].document == answer
        matched = await vector_db.fetch(
            f"SELECT document FROM {index_table}"
            " WHERE fts @@ websearch_to_tsquery(lang_config::regconfig, $1)",
            question.casefold(),
        )
        and_found += answer in [found["document"] for found in matched]
    print(f"labelled questions: {len(questions)}, OR first: {or_first}, AND found at all: {and_found}")
    assert or_first == len(questions)
    assert and_found < len(questions) // 2  # AND finds (at best) a few of them


async def test_a_table_of_the_old_schema_is_migrated_and_filled_without_embedding(
    pg_server: PgServer, index_table: str, vector_db: Connection
) -> None:
    # GIVEN a table as the code before keyword search made it, with rows
    await vector_db.execute("CREATE EXTENSION IF NOT EXISTS vector")
    await vector_db.execute(OLD_DDL.format(table=index_table))
    await vector_db.execute(f"ALTER TABLE {index_table} OWNER TO embedpipe")
    await vector_db.execute(
        f"INSERT INTO {index_table} (output_bucket, document, chunk, id, source_bucket, source_key,"
        " records_etag, model, text, embedding)"
        " SELECT 'b', 'doc-' || n, 0, 'doc-' || n || '#0', 'b', 'doc-' || n, 'e', $1,"
        " 'Заявка НЦ-' || n || ' Отпуск', '[1,0,0]' FROM generate_series(1, 2500) AS n",
        MODEL,
    )
    index = VectorIndex(pg_server.dsn, password=None, table=index_table, dimensions=3)
    try:
        # WHEN the function opens it: the columns are added, nothing is filled yet
        assert await find(index, "НЦ-17") == []  # not failing: migrated rows only, and none is
        hybrid = await find(index, "НЦ-17", "hybrid", (1, 0, 0))
        assert len(hybrid) == 5
        assert {hit.keyword_rank for hit in hybrid} == {None}
        await put(index, [row("new.md", "Заявка НЦ-17 закрыта")])  # a write after the migration
        assert [hit.document for hit in await find(index, "НЦ-17")] == ["new.md"]
        # THEN filling the column from the rows' own text finds the old rows too
        filled = await index.fill_keywords(batch=1000)
        assert filled["keywords_filled"] == 2500
        assert [hit.document for hit in await find(index, "нц-17")] == ["doc-17", "new.md"]  # tied: by name
        assert len(await find(index, "отпуск", top_k=50)) == 50
        assert (await index.fill_keywords())["keywords_filled"] == 0
    finally:
        await index.aclose()
    columns = await vector_db.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass", index_table
    )
    assert {"lang_config", "fts"} <= {column["attname"] for column in columns}
    indexes = await vector_db.fetch("SELECT indexdef FROM pg_indexes WHERE tablename = $1", index_table)
    assert any("gin (fts)" in found["indexdef"] for found in indexes)


OLD_DDL = """CREATE TABLE {table} (
    output_bucket text NOT NULL, document text NOT NULL, chunk integer NOT NULL, id text NOT NULL,
    source_bucket text NOT NULL, source_key text NOT NULL, source_etag text, records_etag text NOT NULL,
    model text NOT NULL, text text NOT NULL, start_offset integer, end_offset integer,
    metadata jsonb NOT NULL DEFAULT '{{}}'::jsonb, embedding public.vector(3) NOT NULL,
    indexed_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (output_bucket, document, chunk))"""


@pytest.fixture
def indexed(make_runtime: RuntimeFactory, pg_server: PgServer, index_table: str, s3_bucket: str) -> Runtime:
    return make_runtime(**in_index(pg_server, index_table, s3_bucket))


async def test_keyword_mode_over_http_asks_the_embeddings_api_nothing(
    indexed: Runtime, api: FakeEmbeddingsAPI
) -> None:
    for number, text in enumerate(
        ["Отпуск оформляют заранее.", "Суточные за командировку.", "Отпуск и отпускные."]
    ):
        body = {"id": f"n{number}", "text": text, "metadata": {"n": number}}
        assert (await call(indexed, request_event("POST", "/v1/documents", body)))[0] == 202
    paid = api.requests
    status, reply = await call(
        indexed, request_event("POST", "/v1/search", {"query": "ОТПУСК", "mode": "keyword"})
    )
    assert status == 200, reply
    assert api.requests == paid  # nothing embedded, nothing paid
    assert (reply["mode"], reply["model"], reply["usage"]["total_tokens"]) == ("keyword", None, 0)
    assert sorted(hit["id"] for hit in reply["data"]) == ["n0#0", "n2#0"]
    assert all(hit["vector_rank"] is None and hit["keyword_rank"] for hit in reply["data"])

    lowest = min(hit["score"] for hit in reply["data"])
    for threshold, kept in ((lowest, ["n2#0"]), (lowest + 0.001, [])):
        body = {"query": "ОТПУСК", "mode": "keyword", "score_threshold": threshold, "filter": {"n": 2}}
        status, reply = await call(indexed, request_event("POST", "/v1/search", body))
        assert status == 200, reply
        assert [hit["id"] for hit in reply["data"]] == kept

    status, reply = await call(
        indexed, request_event("POST", "/v1/search", {"query": "отпуск", "score_threshold": 0.0165})
    )
    assert status == 200, reply
    assert reply["mode"] == "hybrid"
    assert all(hit["score"] >= 0.0165 for hit in reply["data"])
    assert all(
        hit["vector_rank"] and hit["keyword_rank"] for hit in reply["data"]
    )  # only both sides pass 1/61


@pytest.mark.parametrize(
    "body",
    [
        {"query": "отпуск", "mode": "fuzzy"},
        {"query": "отпуск", "score_threshold": "high"},
        {"query": "отпуск", "score-threshold": 0.5},
        {"query": "отпуск", "threshold": 0.5},
    ],
)
async def test_bad_modes_and_thresholds_are_refused(
    indexed: Runtime, api: FakeEmbeddingsAPI, body: dict[str, object]
) -> None:
    status, reply = await call(indexed, request_event("POST", "/v1/search", body))
    assert (status, reply["error"]["code"]) == (400, "invalid_request")
    assert api.requests == 0


@pytest.mark.parametrize("mode", ["keyword", "hybrid", "vector"])
async def test_filter_operators_reach_the_index_in_every_mode(indexed: Runtime, mode: str) -> None:
    """The operators of filters.py, compiled into each mode's SQL: the same documents whatever the mode."""
    notes = [
        ("hr-2022", {"dept": "hr", "year": 2022}),
        ("hr-2024", {"dept": "hr", "year": 2024, "draft": True}),
        ("it-2024", {"dept": "it", "year": 2024}),
        ("legal", {"dept": "legal", "year": "2024"}),  # a string year: no number comparison matches it
    ]
    for name, metadata in notes:
        body = {"id": name, "text": f"Отпуск: правила отдела, {name}.", "metadata": metadata}
        assert (await call(indexed, request_event("POST", "/v1/documents", body)))[0] == 202
    cases = [
        ({"year": {"$gte": 2024}}, ["hr-2024", "it-2024"]),
        ({"dept": {"$in": ["hr", "legal"]}, "year": {"$lt": 2024}}, ["hr-2022"]),
        ({"$or": [{"dept": "it"}, {"draft": {"$exists": True}}]}, ["hr-2024", "it-2024"]),
        ({"dept": {"$ne": "hr"}, "draft": {"$exists": False}}, ["it-2024", "legal"]),
        ({"dept": {"$nin": ["hr", "it"]}}, ["legal"]),
    ]
    for filter_, expected in cases:
        body = {"query": "отпуск", "mode": mode, "top_k": 10, "filter": filter_}
        status, reply = await call(indexed, request_event("POST", "/v1/search", body))
        assert status == 200, reply
        assert sorted(hit["id"].split("#")[0] for hit in reply["data"]) == expected, filter_


async def test_a_filter_the_index_cannot_compile_is_a_400_naming_the_field(indexed: Runtime) -> None:
    body = {"query": "отпуск", "filter": {"price": {"$regex": "^1"}}}
    status, reply = await call(indexed, request_event("POST", "/v1/search", body))
    assert status == 400
    assert reply["error"]["message"].startswith("filter.price.$regex: unknown operator")


async def test_keyword_mode_ranks_every_word_above_any_word(index: VectorIndex) -> None:
    await put(
        index,
        [
            row("one.md", "Отпуск отпуск отпуск отпуск: заявление."),  # one word, many times
            row("both.md", "Отпуск по уходу за ребёнком оформляют приказом."),
        ],
    )
    hits = await find(index, "отпуск приказом")
    assert [hit.document for hit in hits] == ["both.md", "one.md"]
    assert hits[0].score >= 1 > hits[1].score  # every word: 1 + rank; any word: the rank alone


async def test_a_keyword_tier_ranks_a_bounded_number_of_rows(
    index: VectorIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word most chunks hold must not cost a ranking of every chunk: at most KEYWORD_CAP rows."""
    await put(index, [row(f"n{number}.md", f"Отпуск, заметка {number}.") for number in range(6)])
    assert len(await find(index, "отпуск", top_k=10)) == 6
    monkeypatch.setattr("embedding_pipeline.vector_index.search_sql.KEYWORD_CAP", 2)
    assert len(await find(index, "отпуск", top_k=10)) == 2


async def test_on_a_tie_the_chunk_holding_the_querys_code_comes_first(index: VectorIndex) -> None:
    """The code's chunk, first by keyword and beyond the vector side's pool, ties with the vector
    side's first at 1/61: the exact code wins the tie."""
    near = [
        row(f"near-{n:02d}.md", f"Заметка {n} о работе склада.", unit(1, 0.001 * n, 0)) for n in range(45)
    ]
    await put(index, [*near, row("code.md", "Заявка НЦ-4417 закрыта.", unit(0, 0, 1))])
    hits = await find(index, "НЦ-4417", "hybrid", unit(1, 0, 0), top_k=3)
    assert [(hit.document, hit.vector_rank, hit.keyword_rank) for hit in hits[:2]] == [
        ("code.md", None, 1),
        ("near-00.md", 1, None),
    ]
    assert hits[0].score == hits[1].score == pytest.approx(1 / 61, abs=1e-6)
