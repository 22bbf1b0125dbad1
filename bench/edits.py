"""What an edit costs: chunks re-embedded after one edit, for every document shape and kind of edit.

A seeded generator makes documents of five shapes (paragraphs of similar length, mixed lengths,
markdown with headings, JSONL records, CSV rows) and six kinds of edit (replace, insert and delete a
paragraph, edit a heading, append at the end, change one word), `EDITS` of each per shape. Each
document is chunked as a first upload would be, edited, and chunked as a re-upload is, with the
previous chunks (embedding_pipeline/stages/documents/chunking.py); a new chunk whose text is not
among the previous ones is one API call. Beside it, LangChain's RecursiveCharacterTextSplitter at
the same size (what pgai uses), run in .venv/splitters so that it never enters requirements.txt.
Targets: re-embedded <= 2 at p99 and <= 3 at most (an edit that itself spans more than a chunk:
the chunks it spans + 1), mean fill >= 0.9 x LangChain's.

The record shapes (JSONL, CSV) run a third time with PACK_RECORDS on ("packed"): records of equal
metadata packed whole into chunks, the same targets. `rows_100k` is what packing saves on a
100,000-row CSV of the CSV shape's rows: API requests (one per chunk) and hours at 10 rps.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import WORDS
from embedding_pipeline.stages.documents import (
    ChunkingSettings,
    PreviousChunks,
    chunk_document,
    parse_document,
)
from embedding_pipeline.stages.vectorize import content_hash

ROOT = Path(__file__).resolve().parent.parent
SPLITTERS = ROOT / ".venv" / "splitters" / "bin" / "python"
SETTINGS = ChunkingSettings()  # the defaults: 500 tokens, 3 characters a token
PACKED = replace(SETTINGS, pack_records=True)  # PACK_RECORDS=true
RECORD_SHAPES = ("jsonl_records", "csv_rows")
QUOTA_RPS = 10  # Yandex AI Studio's default embeddings quota
EDITS = int(os.environ.get("EDITS", "300"))  # per shape and kind; fewer for a quick look
SHAPES = ("similar_paragraphs", "mixed_paragraphs", "markdown_headings", "jsonl_records", "csv_rows")
KINDS = ("replace", "insert", "delete", "edit_heading", "append", "change_word")

Items = list[str]  # a document as its editable items: paragraphs, headings, records or rows


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."


def paragraph(rng: random.Random, low: int, high: int) -> str:
    target, text = rng.randint(low, high), ""
    while len(text) < target:
        text = f"{text} {sentence(rng)}".strip()
    return text[:high]


def make(shape: str, rng: random.Random) -> Items:
    if shape == "similar_paragraphs":
        return [paragraph(rng, 350, 400) for _ in range(rng.randint(20, 40))]
    if shape == "mixed_paragraphs":
        return [paragraph(rng, 80, 1200) for _ in range(rng.randint(25, 60))]
    if shape == "markdown_headings":
        items: Items = []
        for section in range(rng.randint(5, 10)):
            items.append(f"## {section + 1}. {sentence(rng)[:-1]}")
            items += [paragraph(rng, 150, 700) for _ in range(rng.randint(2, 6))]
        return items
    if shape == "jsonl_records":
        return [paragraph(rng, 100, 900) for _ in range(rng.randint(30, 80))]
    return [paragraph(rng, 40, 200) for _ in range(rng.randint(100, 300))]  # csv rows


def render(shape: str, items: Items) -> tuple[bytes, str]:
    if shape == "jsonl_records":
        lines = [json.dumps({"id": n, "text": text}, ensure_ascii=False) for n, text in enumerate(items)]
        return "\n".join(lines).encode(), "doc.jsonl"
    if shape == "csv_rows":
        rows = ["id,text", *(f'{n},"{text}"' for n, text in enumerate(items))]
        return "\n".join(rows).encode(), "doc.csv"
    return "\n\n".join(items).encode(), "doc.md"


def edit(shape: str, items: Items, kind: str, rng: random.Random) -> Items:
    """One edit of `kind`; a heading edit on a shape without headings edits an item's first words."""
    edited = list(items)
    body = [n for n, item in enumerate(edited) if not item.startswith("## ")]
    at = rng.choice(body)
    if kind == "replace":
        old = len(edited[at])
        edited[at] = paragraph(rng, max(40, old - 150), old + 150)
    elif kind == "insert":
        edited.insert(at, paragraph(rng, 80, 600) if shape != "csv_rows" else paragraph(rng, 40, 200))
    elif kind == "delete":
        del edited[at]
    elif kind == "edit_heading":
        headings = [n for n, item in enumerate(edited) if item.startswith("## ")]
        if headings:
            target = rng.choice(headings)
            edited[target] = edited[target] + " " + rng.choice(WORDS)
        else:
            edited[at] = rng.choice(WORDS).capitalize() + ": " + edited[at]
    elif kind == "append":
        edited.append(paragraph(rng, 80, 600) if shape != "csv_rows" else paragraph(rng, 40, 200))
    else:  # change_word
        words = edited[at].split(" ")
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        edited[at] = " ".join(words)
    return edited


def texts_of(data: bytes, name: str) -> str:
    return parse_document(data, name).text


def ours(
    before: tuple[bytes, str], after: tuple[bytes, str], settings: ChunkingSettings = SETTINGS
) -> tuple[list[str], list[str]]:
    first = chunk_document(parse_document(*before), settings)
    previous = PreviousChunks(content_hash)
    for chunk in first:
        previous.add(chunk.text, content_hash(chunk.text))
    again = chunk_document(parse_document(*after), settings, previous=previous)
    return [c.text for c in first], [c.text for c in again]


def langchain(pairs: list[tuple[str, str]]) -> list[tuple[list[str], list[str]]] | None:
    """LangChain's chunks of each (before, after) text pair, or None without .venv/splitters."""
    if not SPLITTERS.exists():
        return None
    script = (
        "import json, sys\n"
        "from langchain_text_splitters import RecursiveCharacterTextSplitter as S\n"
        f"split = S(chunk_size={SETTINGS.max_chars}, chunk_overlap=0).split_text\n"
        "pairs = json.load(sys.stdin)\n"
        "json.dump([[split(a), split(b)] for a, b in pairs], sys.stdout)\n"
    )
    done = subprocess.run(
        [str(SPLITTERS), "-c", script], input=json.dumps(pairs), capture_output=True, text=True, check=True
    )
    result: list[tuple[list[str], list[str]]] = json.loads(done.stdout)
    return result


def costs(first: list[str], again: list[str]) -> int:
    known = set(first)
    return sum(text not in known for text in again)


def summary(values: list[int], fills: list[float], chunks: list[int]) -> dict[str, Any]:
    ordered = sorted(values)

    def at(share: float) -> int:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {
        "chunks_per_doc": round(statistics.mean(chunks), 1),
        "mean_fill": round(statistics.mean(fills), 3),
        "re_embedded_median": statistics.median(ordered),
        "p90": at(0.9),
        "p99": at(0.99),
        "max": ordered[-1],
        "over_2": round(sum(v > 2 for v in ordered) / len(ordered), 3),
    }


def fill(texts: list[str]) -> float:
    return statistics.mean(len(text) / SETTINGS.max_chars for text in texts)


def measure(shape: str, kind: str, rng: random.Random) -> dict[str, Any]:
    runs = {"ours": SETTINGS, "packed": PACKED} if shape in RECORD_SHAPES else {"ours": SETTINGS}
    paid: dict[str, list[int]] = {name: [] for name in runs}
    fills: dict[str, list[float]] = {name: [] for name in runs}
    counts: dict[str, list[int]] = {name: [] for name in runs}
    pairs: list[tuple[str, str]] = []
    for _ in range(EDITS):
        items = make(shape, rng)
        before, after = render(shape, items), render(shape, edit(shape, items, kind, rng))
        for name, settings in runs.items():
            first, again = ours(before, after, settings)
            paid[name].append(costs(first, again))
            fills[name].append(fill(first))
            counts[name].append(len(first))
        pairs.append((texts_of(*before), texts_of(*after)))
    result = {name: summary(paid[name], fills[name], counts[name]) for name in runs}
    theirs = langchain(pairs)
    if theirs is not None:
        result["langchain"] = summary(
            [costs(a, b) for a, b in theirs],
            [fill(a) for a, _ in theirs],
            [len(a) for a, _ in theirs],
        )
    return result


def rows_100k(rows: int = 100_000) -> dict[str, Any]:
    """API requests for a CSV of `rows` rows of the CSV shape, one row a chunk and packed."""
    rng = random.Random("rows_100k")
    document = parse_document(*render("csv_rows", [paragraph(rng, 40, 200) for _ in range(rows)]))
    requests = {
        name: len(chunk_document(document, settings))
        for name, settings in (("one_row_a_chunk", SETTINGS), ("packed", PACKED))
    }
    hours = {
        f"{name}_hours_at_{QUOTA_RPS}_rps": round(n / QUOTA_RPS / 3600, 2) for name, n in requests.items()
    }
    saved = requests["one_row_a_chunk"] - requests["packed"]
    return {**requests, **hours, "saved": saved, "saved_share": round(saved / requests["one_row_a_chunk"], 3)}


def main(shapes: tuple[str, ...] = SHAPES, kinds: tuple[str, ...] = KINDS) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for shape in shapes:
        for kind in kinds:
            figures[f"{shape}/{kind}"] = measure(shape, kind, random.Random(f"{shape}/{kind}"))
    if "csv_rows" in shapes:
        figures["rows_100k"] = rows_100k()
    return figures


def _picked(position: int) -> tuple[str, ...]:
    return tuple(sys.argv[position].split(",")) if len(sys.argv) > position else ()


if __name__ == "__main__":
    print(json.dumps(main(_picked(1) or SHAPES, _picked(2) or KINDS), indent=1))
