"""The retrieval benchmark's corpus is well-formed and its scoring is right (unit: no network).

Not the figures: those are `python -m bench.retrieval`'s, against the local stack.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import httpx
import pytest

from bench.retrieval import (
    NOT_AVAILABLE,
    hit_at,
    ranked_documents,
    score,
    search_mode,
    targets,
)
from bench.retrieval_corpus import GROUPS, KEYWORD_LIKE, Corpus, Query, build

CORPUS = build()
KEYS = {document.key for document in CORPUS.documents}


def _occurs(term: str, text: str) -> bool:
    """`term` as a whole token: `НЦ-4417` is not found in `НЦ-44170`, nor `Smith` in `Smithson`."""
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text) is not None


def _words(text: str) -> set[str]:
    """Words of four letters or more, compared on their first five (a rough stem for Russian)."""
    return {word.lower()[:5] for word in re.findall(r"\w+", text) if len(word) >= 4}


def test_the_corpus_has_its_size_and_unique_keys() -> None:
    assert 150 <= len(CORPUS.documents) <= 300
    assert len(KEYS) == len(CORPUS.documents)
    assert all(document.text.strip() for document in CORPUS.documents)
    assert not any(key.startswith("/") or key.endswith("/") for key in KEYS)


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_at_least_30_queries(group: str) -> None:
    assert sum(query.group == group for query in CORPUS.queries) >= 30


def test_every_query_names_documents_that_exist() -> None:
    assert all(query.expected and set(query.expected) <= KEYS for query in CORPUS.queries)
    assert len({(query.group, query.text) for query in CORPUS.queries}) == len(CORPUS.queries)


def test_near_duplicates_differ_only_in_their_term() -> None:
    for pair in CORPUS.near_duplicates:
        first, second = CORPUS.document(pair.first).text, CORPUS.document(pair.second).text
        old, new = pair.terms
        assert first.replace(old, new) == second, pair
        assert _occurs(old, first), pair
        assert not _occurs(old, second), pair
        assert _occurs(new, second), pair
        assert not _occurs(new, first), pair


def test_transposed_codes_swap_two_adjacent_digits() -> None:
    transposed = [pair for pair in CORPUS.near_duplicates if pair.kind == "transposed"]
    assert len(transposed) >= 20
    for pair in transposed:
        old, new = pair.terms
        changed = [at for at, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert len(changed) == 2, pair
        first, second = changed
        assert second == first + 1, pair
        assert (old[first], old[second]) == (new[second], new[first]), pair
        assert all(old[at] in "0123456789ABCDEF" for at in changed), pair


def test_sibling_error_codes_share_their_family_and_surnames_are_words() -> None:
    siblings = [pair for pair in CORPUS.near_duplicates if pair.kind == "sibling"]
    assert siblings
    for pair in siblings:
        old, new = pair.terms
        assert old != new, pair
        # One family's leading characters: ERR_CONN_RESET / ERR_CONN_REFUSED, ECONNRESET, SMTP's 5.7.1 / 5.1.7
        assert old[:2] == new[:2], pair
    for pair in CORPUS.near_duplicates:
        if pair.kind == "surname":
            assert all(term.isalpha() and term[0].isupper() for term in pair.terms), pair


def test_a_keyword_like_query_names_a_term_found_in_its_document_alone() -> None:
    """So a keyword search can always find the one right document, and a twin exists to confuse it."""
    twins = {key for pair in CORPUS.near_duplicates for key in (pair.first, pair.second)}
    for query in CORPUS.queries:
        if query.group not in KEYWORD_LIKE:
            continue
        assert query.term is not None, query
        assert query.term in query.text, query
        holding = {document.key for document in CORPUS.documents if _occurs(query.term, document.text)}
        assert holding == set(query.expected), query
        assert set(query.expected) <= twins, query


def test_paraphrases_share_few_words_with_their_document_in_both_languages() -> None:
    paraphrases = [query for query in CORPUS.queries if query.group == "paraphrase"]
    for query in paraphrases:
        shared = _words(query.text) & _words(CORPUS.document(query.expected[0]).text)
        assert len(shared) <= 2, (query.text, shared)
    russian = sum(bool(re.search("[а-яё]", query.text)) for query in paraphrases)
    assert 0.3 <= russian / len(paraphrases) <= 0.7


def test_ranked_documents_keeps_each_document_at_its_best_chunk() -> None:
    hits = [{"source": {"key": f"incoming/{key}"}} for key in ("b.md", "a.md", "b.md", "c.md", "a.md")]
    assert ranked_documents(hits, "incoming/") == ["b.md", "a.md", "c.md"]


def test_hit_at_k_on_a_hand_made_ranking() -> None:
    ranking = ["x.md", "y.md", "z.md", "w.md"]
    assert hit_at(ranking, ("x.md",), 1)
    assert not hit_at(ranking, ("y.md",), 1)
    assert hit_at(ranking, ("y.md",), 3)
    assert hit_at(ranking, ("z.md",), 3)
    assert not hit_at(ranking, ("w.md",), 3)
    assert hit_at(ranking, ("none.md", "z.md"), 3)  # any expected document counts
    assert not hit_at([], ("x.md",), 3)


def test_score_counts_hits_per_group() -> None:
    answers = [
        (Query("code", "НЦ-1", ("a.md",), "НЦ-1"), ["a.md", "b.md"]),  # hit@1
        (Query("code", "НЦ-2", ("b.md",), "НЦ-2"), ["a.md", "b.md"]),  # hit@3 only
        (Query("code", "НЦ-3", ("c.md",), "НЦ-3"), ["a.md", "b.md", "d.md", "c.md"]),  # neither
        (Query("code", "НЦ-4", ("d.md",), "НЦ-4"), []),  # nothing found
        (Query("paraphrase", "q", ("p.md",)), ["x.md", "y.md", "p.md"]),
    ]
    figures = score(answers)
    assert set(figures) == {"code", "paraphrase"}
    assert (figures["code"]["hit@1"], figures["code"]["hit@3"]) == (0.25, 0.5)
    assert figures["code"]["metric"] == "hit@1"
    assert [miss["query"] for miss in figures["code"]["misses"]] == ["НЦ-2", "НЦ-3", "НЦ-4"]
    assert (figures["paraphrase"]["hit@1"], figures["paraphrase"]["hit@3"]) == (0.0, 1.0)
    assert figures["paraphrase"]["misses"] == []


def _mode_figures(value: float) -> dict[str, Any]:
    return {"groups": {group: {"hit@1": value, "hit@3": value} for group in GROUPS}}


def test_targets_need_every_mode_and_compare_hybrid_with_the_best_of_the_others() -> None:
    assert targets({"vector": _mode_figures(0.8), "keyword": NOT_AVAILABLE, "hybrid": NOT_AVAILABLE}) == {
        "status": "not measured: hybrid, keyword not available"
    }
    met = targets(
        {"vector": _mode_figures(0.8), "keyword": _mode_figures(0.9), "hybrid": _mode_figures(0.95)}
    )
    assert met["status"] == "met"
    missed = targets(
        {"vector": _mode_figures(0.8), "keyword": _mode_figures(0.9), "hybrid": _mode_figures(0.85)}
    )
    assert missed["status"] == "missed"
    assert missed["code: hybrid hit@1 >= max(vector, keyword)"].startswith("MISSED")
    assert missed["code: hybrid hit@1 >= 0.9"].startswith("MISSED")


def _server(accepts_mode: bool) -> httpx.MockTransport:
    """`/v1/search` as today's server answers (`mode` refused) or as hybrid search will."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if "mode" in body and not accepts_mode:
            message = "mode: unknown field"
            return httpx.Response(400, json={"error": {"message": message, "code": "invalid_request"}})
        hits = [{"source": {"key": "incoming/" + document.key}} for document in CORPUS.documents[:10]]
        return httpx.Response(200, json={"object": "list", "data": hits})

    return httpx.MockTransport(answer)


def _small_corpus() -> Corpus:
    return Corpus(CORPUS.documents, CORPUS.queries[:3], CORPUS.near_duplicates)


def test_a_server_refusing_mode_leaves_vector_search_measured_and_the_rest_not_available() -> None:
    with httpx.Client(transport=_server(accepts_mode=False)) as client:
        found = {
            mode: search_mode(client, "http://function/v1/search", "incoming/", _small_corpus(), mode)
            for mode in ("vector", "keyword", "hybrid")
        }
    assert found["keyword"] == found["hybrid"] == NOT_AVAILABLE
    vector = found["vector"]
    assert isinstance(vector, dict)
    assert vector["request"].startswith("no `mode`")
    assert Counter(figures["queries"] for figures in vector["groups"].values()) == Counter({3: 1})


def test_a_server_taking_mode_is_asked_in_each_mode() -> None:
    with httpx.Client(transport=_server(accepts_mode=True)) as client:
        hybrid = search_mode(client, "http://function/v1/search", "incoming/", _small_corpus(), "hybrid")
    assert isinstance(hybrid, dict)
    assert hybrid["request"] == '"mode": "hybrid"'
