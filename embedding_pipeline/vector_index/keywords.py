"""The keyword side of the index: each chunk's full-text form (a `tsvector`) and a query's `tsquery`,
made so that neither depends on the database's locale.

Case is folded here, in Python, never by PostgreSQL: a database created with `lc_ctype = C` (Managed
PostgreSQL's default, and the local stack's) leaves Cyrillic capitals as they are in `lower()` and
in `to_tsvector`, so `Отпуск` would never match `отпуск`. `str.casefold()` (rather than `lower()`:
it is Unicode's caseless matching, `ß` → `ss` among others, and the same as `lower()` for Cyrillic);
then `ё` → `е`, since Russian writes `ёлка` and `елка` for one word (the `russian` stemmer folds it
too, `simple` and `english` do not).

The language configuration is chosen per chunk from its letters (`language_of`): `russian` when at
least a fifth of them are Cyrillic (the `russian` configuration stems ASCII words with the English
stemmer, so a Russian text full of English terms loses nothing), else `english` when at least half
are Latin, else `simple` (no stemming: exact words). It is stored beside the vector, and a query is
matched against each row with that row's configuration.

Codes (`НЦ-4417`, `ERR_CONN_RESET`, `ABC-123/45`): PostgreSQL's parser splits them (`нц`, `-4417`;
`err`, `conn`, `reset`), so `НЦ-4471` would share every part but one with `НЦ-4417` and `4417` alone
would not match `-4417`. Each word holding a digit or joined by `-_/.:` is therefore also indexed
whole and by its parts, with weight A (the text's words have D), and a query's codes are looked up
whole: the exact code outranks its near misses.
"""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import asyncpg
    import asyncpg.pool

    Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

Language = Literal["russian", "english", "simple"]
LANGUAGES: tuple[Language, ...] = ("russian", "english", "simple")

# Characters of a chunk's text that reach to_tsvector: its limits are 1 MiB per tsvector and 16,383
# word positions; a chunk is a few thousand characters, a long CSV row may be far more.
TEXT_LIMIT = 100_000
_CODES_LIMIT = 200  # whole codes per chunk
_CODE = re.compile(r"[^\W_]+(?:[-_/.:]+[^\W_]+)+|\w*\d\w*")
_PARTS = re.compile(r"[^\W_]+")
_CYRILLIC_SHARE = 0.2
_LATIN_SHARE = 0.5


def fold(text: str) -> str:
    """Text as the keyword index and its queries see it: case folded, `ё` as `е`, NFC."""
    return unicodedata.normalize("NFC", text).casefold().replace("ё", "е")


def language_of(text: str) -> Language:
    cyrillic = latin = letters = 0
    for char in text[:TEXT_LIMIT]:
        if char.isalpha():
            letters += 1
            if "\u0400" <= char <= "\u04ff":
                cyrillic += 1
            elif char.isascii() or "\u00c0" <= char <= "\u024f":
                latin += 1
    if letters and cyrillic >= _CYRILLIC_SHARE * letters:
        return "russian"
    if letters and latin >= _LATIN_SHARE * letters:
        return "english"
    return "simple"


def codes(folded: str) -> list[str]:
    """The codes of folded text, whole, in order of appearance, without repeats."""
    found: dict[str, None] = {}
    for match in _CODE.finditer(folded):
        code = match.group()
        if len(code) > 1 and not code.isdigit():
            found[code] = None
            if len(found) >= _CODES_LIMIT:
                break
    return list(found)


def code_lexemes(folded: str) -> str:
    """The codes of folded text as a tsvector literal: each whole and by its parts, weight A."""
    lexemes: dict[str, None] = {}
    for code in codes(folded):
        lexemes[code] = None
        for part in _PARTS.findall(code):
            lexemes[part] = None
    return " ".join(f"{_quoted(lexeme)}:{number}A" for number, lexeme in enumerate(lexemes, 1))


def query_terms(folded: str) -> tuple[str, str]:
    """A folded query as its words (codes taken out) and its codes as a tsquery literal, ORed (empty
    when it names none). A code is looked up whole only: `НЦ-4417` must not find every `НЦ-` by
    its part `нц`; `4417` alone is a word, and finds the part of `НЦ-4417`."""
    found = codes(folded)
    words = _CODE.sub(lambda match: " " if match.group() in found else match.group(), folded)
    return words, " | ".join(_quoted(code) for code in found)


def row_keywords(text: str) -> tuple[Language, str, str]:
    """A chunk's configuration, folded text and code lexemes: what `TSVECTOR_SQL` takes."""
    limited = text[:TEXT_LIMIT]
    folded = fold(limited)
    return language_of(limited), folded, code_lexemes(folded)


async def keyword_columns(connection: Connection, texts: list[str]) -> list[tuple[str, bytes]]:
    """Each text's `lang_config` and `fts`, made by the database's own parser and stemmers in one
    round trip; `fts` comes back in binary form, to be copied in as it is (the connection's codec)."""
    made = [row_keywords(text) for text in texts]
    found = await connection.fetch(
        "SELECT to_tsvector(c::regconfig, f) || x::tsvector AS fts"
        " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(c, f, x, n) ORDER BY n",
        [language for language, _, _ in made],
        [folded for _, folded, _ in made],
        [lexemes for _, _, lexemes in made],
    )
    return [(language, row["fts"]) for (language, _, _), row in zip(made, found, strict=True)]


def tsquery_sql(language: Language, text: int, *, every_word: bool) -> str:
    """The query for rows of `language` from the folded query's words at argument `text` (codes
    taken out: they have a tier of their own, search_sql.py), stemmed by `language`: every word
    (`every_word`), or any one."""
    words = f"plainto_tsquery('{language}', ${text})"
    return words if every_word else f"replace({words}::text, ' & ', ' | ')::tsquery"


def row_tsquery_sql(text: int, *, every_word: bool) -> str:
    """The query matched against each row: the one of the row's own configuration."""
    branches = " ".join(
        f"WHEN '{language}' THEN {tsquery_sql(language, text, every_word=every_word)}"
        for language in LANGUAGES[:-1]
    )
    return f"CASE lang_config {branches} ELSE {tsquery_sql('simple', text, every_word=every_word)} END"


def any_tsquery_sql(text: int, *, every_word: bool) -> str:
    """Every configuration's query ORed: a constant the GIN index can serve, before each row is
    checked against its own configuration's."""
    queries = (tsquery_sql(language, text, every_word=every_word) for language in LANGUAGES)
    return "(" + " || ".join(queries) + ")"


def _quoted(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


async def fill_missing(connection: Connection, table: str, *, batch: int, limit: int | None = None) -> int:
    """Give rows without a keyword form one, from their own text, `batch` rows per transaction in key
    order, every such row or about `limit` of them; how many were filled. Rows a writer replaces
    meanwhile come with their own."""
    after: tuple[str, str, int] = ("", "", -(2**31))
    filled = 0
    while limit is None or filled < limit:
        found = await connection.fetch(
            f"SELECT output_bucket, document, chunk, text FROM {table}"  # noqa: S608
            " WHERE fts IS NULL AND (output_bucket, document, chunk) > ($1, $2, $3)"
            " ORDER BY output_bucket, document, chunk LIMIT $4",
            *after,
            batch,
        )
        if not found:
            return filled
        made = [row_keywords(row["text"]) for row in found]
        status = await connection.execute(
            f"UPDATE {table} t SET lang_config = u.c, fts = to_tsvector(u.c::regconfig, u.f) || u.x::tsvector"  # noqa: S608
            " FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[])"
            " AS u(b, d, n, c, f, x)"
            " WHERE (t.output_bucket, t.document, t.chunk) = (u.b, u.d, u.n) AND t.fts IS NULL",
            [row["output_bucket"] for row in found],
            [row["document"] for row in found],
            [row["chunk"] for row in found],
            [language for language, _, _ in made],
            [folded for _, folded, _ in made],
            [lexemes for _, _, lexemes in made],
        )
        filled += int(status.rsplit(" ", 1)[-1])
        last = found[-1]
        after = (last["output_bucket"], last["document"], last["chunk"])
    return filled
