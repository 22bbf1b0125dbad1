"""A records object's lines as the index's rows, checked for what PostgreSQL would refuse.

Nothing PostgreSQL would refuse gets as far as the COPY, which would fail the whole document, and
again at every reconcile: a line that is damaged (outputs/lines.py), not a records line, or holds a
vector of another length than the index's or a non-finite number, is skipped and counted; NULs are
dropped from texts and metadata (text and jsonb hold none); a lone surrogate, which is no UTF-8,
makes the line damaged.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from typing import Any

from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.logs import get_logger
from embedding_pipeline.outputs.lines import Line, read_line
from embedding_pipeline.vector_index.postgres import IndexRow

log = get_logger()


async def records_rows(
    storage: ObjectStorage,
    bucket: str,
    key: str,
    *,
    scope: str,
    document: str,
    records_etag: str,
    dimensions: int,
) -> AsyncIterator[IndexRow]:
    """The rows of the records object at `key`, streamed; its damaged lines are skipped and logged."""
    damaged = 0
    async for line in storage.iter_lines(bucket, key):
        record = read_line(line)
        try:
            row = None if record is None else index_row(record, scope, document, records_etag, dimensions)
        except ValueError:
            row = None
        if row is None:
            damaged += 1  # a damaged line is not trusted; the rest of the records still are
            continue
        yield row
    if damaged:
        log.warning("index_records_damaged", document=document, lines=damaged)


def index_row(record: Line, scope: str, document: str, records_etag: str, dimensions: int) -> IndexRow:
    """The line as a row of `document`'s, or ValueError (UnicodeError among them) where PostgreSQL
    would refuse it or the line holds no chunk."""
    source = record.source
    if record.id is None or record.chunk is None or record.text is None or source is None:
        raise ValueError("not a records line")
    vector = record.embedding
    if len(vector) != dimensions or not all(map(math.isfinite, vector)):
        raise ValueError("not a vector of the index's length")
    return (
        scope,
        document,
        record.chunk,
        _text(record.id),
        _text(source.bucket),
        _text(source.key),
        None if source.etag is None else _text(source.etag),
        records_etag,
        _text(record.model),
        _text(record.text),
        record.start,
        record.end,
        json.dumps(_without_nul(record.metadata), ensure_ascii=False),
        vector,
    )


def _text(value: str) -> str:
    """PostgreSQL's text holds no NUL, and only valid UTF-8 (UnicodeError for a lone surrogate)."""
    value.encode("utf-8")
    return value.replace("\x00", "")


def _without_nul(value: Any) -> Any:
    """jsonb refuses \\u0000 in any string: metadata loses its NULs, keys included."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_text(name): _without_nul(item) for name, item in value.items()}
    return value
