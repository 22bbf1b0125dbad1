"""What a queue message or a document submission carries: an object reference or an inline record."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.records import validate_source_key


def _safe_key(value: str) -> str:
    try:
        validate_source_key(value)
    except UnsafeKey as exc:
        raise ValueError(str(exc)) from None
    return value


MAX_INLINE_CHARS = 256 * 1024  # a queue message is at most 256 KB anyway
Scalar = str | int | float | bool | None


class ObjectReference(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    key: Annotated[str, Field(min_length=1)]
    bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    continuation: Annotated[int, Field(ge=0)] = 0

    _check_key = field_validator("key")(_safe_key)


class InlineRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: Annotated[str, Field(min_length=1, max_length=512)]
    text: Annotated[str, Field(max_length=MAX_INLINE_CHARS)]
    metadata: dict[str, Scalar] = {}
    model: str | None = None

    _check_id = field_validator("id")(_safe_key)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value


MessageBody: TypeAdapter[ObjectReference | InlineRecord] = TypeAdapter(ObjectReference | InlineRecord)
