"""Work messages: what a queue message or an HTTP submission asks the pipeline to do.

{"key": "incoming/a.md", "bucket": "docs"}      an object reference, embedded like an upload
                                                ("bucket" defaults to SOURCE_BUCKET)
{"key": ..., "bucket": ..., "continuation": n}  the n-th hand-over of a large document; the
                                                pipeline writes these itself (`continuation_of`)
{"id": "faq-17", "text": "...", "metadata": {...}, "model": "doc" | "query" | <URI>}
                                                an inline record, embedded as `_inline/{id}`
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.outputs.layout import validate_source_key

if TYPE_CHECKING:
    from embedding_pipeline.settings import Settings

MAX_INLINE_CHARS = 256 * 1024  # a queue message is at most 256 KB anyway
Scalar = str | int | float | bool | None


def _safe_key(value: str) -> str:
    try:
        validate_source_key(value)
    except UnsafeKey as exc:
        raise ValueError(str(exc)) from None
    return value


class ObjectReference(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    key: Annotated[str, Field(min_length=1)]
    bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    continuation: Annotated[int, Field(ge=0)] = 0

    _check_key = field_validator("key")(_safe_key)

    @classmethod
    def continuation_of(cls, bucket: str, key: str, handed_over: int) -> ObjectReference:
        """The message that resumes a document after its `handed_over`-th hand-over."""
        return cls(key=key, bucket=bucket, continuation=handed_over + 1)

    def body(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


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

    def body(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


WorkMessage = ObjectReference | InlineRecord
WORK_MESSAGE: TypeAdapter[WorkMessage] = TypeAdapter(WorkMessage)


class WorkRefused(Exception):
    """A well-formed message the pipeline will not act on; `code` says why in a word."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def source_bucket_of(settings: Settings, reference: ObjectReference) -> str:
    """The bucket a reference may be read from. Nobody can point the function (and its service
    account's rights) at a bucket the operator did not configure."""
    bucket = reference.bucket or settings.source_bucket
    if bucket is None:
        raise WorkRefused("no bucket in the message and SOURCE_BUCKET is not set", "bucket_required")
    if (refusal := settings.bucket_refusal(bucket)) is not None:
        raise WorkRefused(refusal, "bucket_not_allowed")
    return bucket


def invalid_reason(exc: ValidationError) -> str:
    """One line saying what is wrong with a message body."""
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return "body is not JSON"
    # A union reports errors for every member; the useful one is about a field that was given.
    given = [error for error in errors if error["type"] not in ("missing", "extra_forbidden")]
    error = (given or errors)[0]
    where = ".".join(str(part) for part in error["loc"][1:])  # drop the union member's name
    return f"{where}: {error['msg']}" if where else str(error["msg"])
