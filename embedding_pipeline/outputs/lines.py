"""The JSON lines of records and checkpoints: written compactly, and read back by one reader.

A records line (`record_line`) holds one chunk: its id, number, text, offsets in the source, metadata,
source, and its vector with the model, text hash and tokens. A checkpoint line (`checkpoint_line`)
holds the vector part only: content_hash, model, tokens, embedding. `read_line` reads either kind
and says what makes a line damaged; the index's rows, the chunks a re-upload keeps and the vectors
worth reusing (`known_vector`) are taken from what it returns.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Container
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from embedding_pipeline.outputs.models import SourceRef
    from embedding_pipeline.stages.documents import Chunk

# What a damaged line raises while it is read: json's ValueError (UnicodeDecodeError among them), a
# field missing (KeyError), of another kind (TypeError; AttributeError for a line that is no object),
# or a number no float holds (OverflowError).
_DAMAGED = (ValueError, KeyError, TypeError, AttributeError, OverflowError)


def record_line(
    *,
    record_id: str,
    number: int,
    chunk: Chunk,
    text_hash: str,
    vector: array[float],
    tokens: int,
    model: str,
    source: SourceRef,
) -> bytes:
    record = {
        "id": f"{record_id}#{number}",
        "chunk": number,
        "text": chunk.text,
        "embedding": vector.tolist(),
        "model": model,
        "source": {"bucket": source.bucket, "key": source.key, "etag": source.etag},
        "start": chunk.start,
        "end": chunk.end,
        "content_hash": text_hash,
        "tokens": tokens,
        "metadata": chunk.metadata,
    }
    # allow_nan=False: a record strict JSON readers reject is never written (a ValueError parks it).
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def checkpoint_line(*, text_hash: str, vector: array[float], tokens: int, model: str) -> bytes:
    record = {"content_hash": text_hash, "model": model, "tokens": tokens, "embedding": vector.tolist()}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


class LineSource(NamedTuple):
    """The source object a records line's chunk was cut from."""

    bucket: str
    key: str
    etag: str | None


class Line(NamedTuple):
    """A records or checkpoint line as read back.

    Every line holds a text's hash, the model and the vector (and the tokens the text cost, 0 when it
    does not say). The chunk's fields are None on a checkpoint line; a reader that needs them (the
    index's rows) refuses a line without them.

    A NamedTuple, not a frozen dataclass: one is made for every line read (a 20 MB document has
    11,500), and a frozen dataclass costs three times as much to make.
    """

    content_hash: str
    model: str
    tokens: int
    embedding: list[float]
    id: str | None  # "{record id}#{chunk}"
    chunk: int | None  # the chunk's number in its document
    text: str | None
    source: LineSource | None
    start: int | None  # the chunk's offsets in the source's text
    end: int | None
    metadata: dict[str, Any]


def read_line(line: bytes, *, model: str | None = None, wanted: Container[str] | None = None) -> Line | None:
    """The line's fields, or None if it is damaged: not a JSON object, without a content_hash, model
    or embedding, or holding any field of another kind than the writers write (a text that is no
    string, a vector or a number that is no number, a source without bucket and key, metadata that is
    no object). A damaged line is skipped whole: no field of it is trusted because others look right.

    With `model` or `wanted`, a line of another model or of a hash not wanted is None as well, before
    the rest of it is read: its reader skips it, damaged or not, and most of a line's reading is its
    vector's. Numbers are read as `int()` reads them (3.0 is chunk 3). Values JSON allows but
    PostgreSQL refuses (NUL, a lone surrogate, a non-finite number) are the index's to judge
    (vector_index/rows.py).
    """
    try:
        fields = json.loads(line)
        content_hash, line_model = _string(fields["content_hash"]), _string(fields["model"])
        if (model is not None and line_model != model) or (wanted is not None and content_hash not in wanted):
            return None
        source = fields.get("source")
        return Line(
            content_hash=content_hash,
            model=line_model,
            tokens=int(fields.get("tokens") or 0),
            embedding=_vector(fields["embedding"]),
            id=_optional_string(fields.get("id")),
            chunk=_optional_int(fields.get("chunk")),
            text=_optional_string(fields.get("text")),
            source=None if source is None else _source(source),
            start=_optional_int(fields.get("start")),
            end=_optional_int(fields.get("end")),
            metadata=_object(fields.get("metadata") or {}),
        )
    except _DAMAGED:
        return None


def known_vector(
    line: bytes, *, model: str, dimensions: int, wanted: Container[str] | None = None
) -> tuple[str, array[float], int] | None:
    """A reusable (hash, vector, tokens) from a records or checkpoint line of `model` whose vector
    has `dimensions` finite numbers, or None: a vector of another shape is no use to records of this
    one, whatever the model is called (a damaged line is None too). `wanted=None` keeps every hash
    (pieces of split chunks have hashes nobody can predict before the API asks for the split)."""
    found = read_line(line, model=model, wanted=wanted)
    if found is None or len(found.embedding) != dimensions:
        return None
    vector = array("d", found.embedding)
    if not all(map(math.isfinite, vector)):
        return None
    return found.content_hash, vector, found.tokens


def _source(value: dict[str, Any]) -> LineSource:
    return LineSource(_string(value["bucket"]), _string(value["key"]), _optional_string(value.get("etag")))


def _vector(value: object) -> list[float]:
    if not isinstance(value, list):
        raise TypeError("not a list")
    # A TypeError unless every element is a number, an OverflowError for one no float holds: checked
    # in C, at a fifth of what making an array of them costs (known_vector makes one if it wants it).
    sum(value, 0.0)
    return value


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def _optional_string(value: object) -> str | None:
    return None if value is None else _string(value)


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError("not an object")
    return value
