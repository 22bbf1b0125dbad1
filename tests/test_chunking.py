"""Unit: chunks fit the model, keep exact offsets, respect structure, and stay stable under edits."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedding_pipeline.stages.documents import (
    Chunk,
    ChunkingSettings,
    ParsedDocument,
    Section,
    chunk_document,
    parse_document,
    split_chunk,
)

SMALL = ChunkingSettings(max_tokens=40, chars_per_token=3.0)  # 120 characters
WORDS_RU = [
    "отчёт",
    "выручка",
    "прибыль",
    "квартал",
    "рост",
    "клиент",
    "договор",
    "сервис",
    "функция",
    "вектор",
    "поиск",
    "данные",
]
WORDS_EN = [
    "report",
    "revenue",
    "profit",
    "quarter",
    "growth",
    "client",
    "contract",
    "service",
    "function",
    "vector",
    "search",
    "data",
]


def plain(text: str) -> ParsedDocument:
    return ParsedDocument(text, "text", (Section(0, len(text), {}),))


def paragraphs(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        words = WORDS_RU if rng.random() < 0.5 else WORDS_EN
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(4, 12))).capitalize() + "."
            for _ in range(rng.randint(1, 6))
        ]
        out.append(" ".join(sentences))
    return out


def assert_invariants(document: ParsedDocument, chunks: list[Chunk], max_chars: int) -> None:
    previous_end = 0
    for chunk in chunks:
        assert chunk.text == document.text[chunk.start : chunk.end]
        assert chunk.text == chunk.text.strip()
        assert chunk.text
        assert len(chunk.text) <= max_chars
        assert chunk.start >= previous_end
        previous_end = chunk.end
    covered: set[int] = set()
    for chunk in chunks:
        covered.update(range(chunk.start, chunk.end))
    uncovered = [i for i, char in enumerate(document.text) if not char.isspace() and i not in covered]
    assert uncovered == []


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab cд.!?\n#\t"), max_size=2000), st.integers(16, 60))
def test_invariants_hold_for_any_text(text: str, max_tokens: int) -> None:
    chunking = ChunkingSettings(max_tokens=max_tokens, chars_per_token=3.0)
    document = plain(text)
    chunks = chunk_document(document, chunking)
    assert_invariants(document, chunks, chunking.max_chars)
    assert chunks == chunk_document(document, chunking)  # deterministic


def test_short_paragraphs_are_packed_together() -> None:
    document = plain("One.\n\nTwo.\n\nThree.")
    assert [c.text for c in chunk_document(document, SMALL)] == ["One.\n\nTwo.\n\nThree."]


def test_over_long_paragraph_is_split_at_sentences() -> None:
    sentences = [f"Sentence number {n} says something about the report." for n in range(8)]
    document = plain(" ".join(sentences))
    chunks = chunk_document(document, SMALL)
    assert len(chunks) > 1
    assert all(chunk.text.endswith(".") for chunk in chunks)
    assert_invariants(document, chunks, SMALL.max_chars)


def test_word_longer_than_a_chunk_is_hard_cut() -> None:
    document = plain("x" * 300)
    chunks = chunk_document(document, SMALL)
    assert [len(c.text) for c in chunks] == [120, 120, 60]


def test_heading_starts_a_chunk_and_stays_with_its_text() -> None:
    text = "Intro paragraph.\n\n# Heading\n\nBody under the heading."
    texts = [c.text for c in chunk_document(plain(text), SMALL)]
    assert texts == ["Intro paragraph.", "# Heading\n\nBody under the heading."]


def test_heading_inside_a_paragraph_starts_a_unit() -> None:
    text = "Intro line.\n## Section\nSection body."
    texts = [c.text for c in chunk_document(plain(text), SMALL)]
    assert texts == ["Intro line.", "## Section\nSection body."]


def test_sections_are_never_crossed_and_keep_their_metadata() -> None:
    document = parse_document(b'{"text": "one", "id": 1}\n{"text": "two", "id": 2}', "r.jsonl")
    chunks = chunk_document(document, SMALL)
    assert [(c.text, c.metadata["id"]) for c in chunks] == [("one", 1), ("two", 2)]


def test_overlap_starts_earlier_at_a_sentence_and_stays_within_the_cap() -> None:
    chunking = ChunkingSettings(max_tokens=40, overlap_tokens=10, chars_per_token=3.0)
    document = plain(" ".join(f"Sentence {n} is here." for n in range(30)))
    chunks = chunk_document(document, chunking)
    assert len(chunks) > 2
    for before, after in itertools.pairwise(chunks):
        assert after.start < before.end  # overlapping
        assert after.text[0].isupper()  # starts at a sentence
    assert all(len(c.text) <= chunking.max_chars for c in chunks)
    assert all(c.text == document.text[c.start : c.end] for c in chunks)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 5000}, "max_tokens"),
        ({"max_tokens": 100, "overlap_tokens": 50}, "overlap"),
        ({"chars_per_token": 0.1}, "chars_per_token"),
    ],
)
def test_bad_chunking_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChunkingSettings(**kwargs)  # type: ignore[arg-type]


def test_one_edit_changes_only_chunks_near_it() -> None:
    chunking = ChunkingSettings(max_tokens=120, chars_per_token=3.0)
    original = paragraphs(seed=7, count=60)
    edited = list(original)
    edited[30] = original[30] + " " + " ".join(["добавленное предложение о выручке."] * 4)
    edited_text = "\n\n".join(edited)
    edit_start = edited_text.index(edited[30])
    edit_end = edit_start + len(edited[30])
    before = chunk_document(plain("\n\n".join(original)), chunking)
    after = chunk_document(plain(edited_text), chunking)

    old_texts = {c.text for c in before}
    changed = [c for c in after if c.text not in old_texts]
    window = (edit_start - chunking.max_chars, edit_end + 2 * chunking.max_chars)
    assert changed
    assert all(window[0] <= c.start and c.end <= window[1] for c in changed)
    shift = len(edited[30]) - len(original[30])
    assert [c.text for c in before if c.end < window[0]] == [c.text for c in after if c.end < window[0]]
    assert [c.text for c in before if c.start > window[1] - shift] == [
        c.text for c in after if c.start > window[1]
    ]


def test_edits_change_few_chunks_on_average() -> None:
    chunking = ChunkingSettings(max_tokens=120, chars_per_token=3.0)
    changed_counts = []
    for seed in range(40):
        rng = random.Random(seed)
        original = paragraphs(seed, 50)
        edited = list(original)
        target = rng.randrange(len(original))
        edited[target] = original[target] + " " + original[(target + 7) % len(original)]
        old_texts = {c.text for c in chunk_document(plain("\n\n".join(original)), chunking)}
        new_chunks = chunk_document(plain("\n\n".join(edited)), chunking)
        changed_counts.append(sum(1 for c in new_chunks if c.text not in old_texts))
    # Greedy packing would re-embed everything after the edit (about half the document on average).
    assert sum(changed_counts) / len(changed_counts) <= 3.0
    assert max(changed_counts) <= 8


def test_split_chunk_halves_at_a_sentence_with_exact_offsets() -> None:
    text = "xx First half sentence. Second half sentence. Third"
    chunk = Chunk(text[3:], 3, len(text), {"page": 2})
    left, right = split_chunk(chunk)
    assert left.text == "First half sentence. Second half sentence." or left.text == "First half sentence."
    for half in (left, right):
        assert text[half.start : half.end] == half.text
        assert half.text
        assert half.metadata == {"page": 2}
    assert right.start > left.end - 1


def test_split_chunk_without_spaces_cuts_in_the_middle() -> None:
    left, right = split_chunk(Chunk("abcdef", 10, 16, {}))
    assert (left.text, left.start, left.end) == ("abc", 10, 13)
    assert (right.text, right.start, right.end) == ("def", 13, 16)
