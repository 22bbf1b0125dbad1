"""Work messages: what a queue message or an HTTP submission asks the pipeline to do.

{"key": "incoming/a.md", "bucket": "docs"}      an object reference, embedded like an upload
                                                ("bucket" defaults to SOURCE_BUCKET)
{"key": ..., "bucket": ..., "continuation": n}  the n-th hand-over of a large document; the
                                                pipeline writes these itself (`continuation_of`)
{"id": "faq-17", "text": "...", "metadata": {...}, "model": "doc" | "query" | <URI>}
                                                an inline record, embedded as `_inline/{id}`
{"key": ..., "bucket": ..., "sweep": "<scope>/<id>"}  a reference a reconcile sweep queued: what
                                                became of it is reported back to that sweep
{"reconcile": {"bucket": ..., "prefix": ..., "sweep": ..., "step": n}}
                                                the next step of a reconcile sweep (its pages)

Which kind a message is follows from the field that tells them apart ("key": a reference; "id" or
"text": an inline record; "reconcile": a sweep's step), so a validation error speaks of the kind the
sender meant. The handlers parse bodies into these models at the edge; the core writes them (a
continuation, a sweep's references and steps) and reads them back only from its own outputs (an
inline text kept beside its checkpoint). Which buckets and keys a message may name is
bucket_policy.py's rule.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
)

from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.outputs.document_keys import validate_source_key
from embedding_pipeline.text_safety import encodable

MAX_INLINE_CHARS = 256 * 1024  # a queue message is at most 256 KB anyway
# Metadata a document carries into its manifest and every record, as JSON at most: the manifest is
# read back under 1 MiB (outputs/store.py), and one over it would read as missing, and the document
# be paid for again at every delivery.
MAX_METADATA_BYTES = 64 * 1024


Text = Annotated[str, AfterValidator(encodable)]
Scalar = str | int | float | bool | None


def _safe_key(value: str) -> str:
    encodable(value)
    try:
        validate_source_key(value)
    except UnsafeKey as exc:
        raise ValueError(str(exc)) from None
    return value


# A sweep's tag: its scope's hash and its id (pipeline/reconcile/state.py); used in output keys.
SweepTag = Annotated[str, Field(pattern=r"^[0-9a-f]{16}/[0-9A-Za-z-]{1,64}$")]
Bucket = Annotated[str, Field(min_length=3, max_length=63), AfterValidator(encodable)]


class ObjectReference(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    key: Annotated[str, Field(min_length=1)]
    bucket: Bucket | None = None
    continuation: Annotated[int, Field(ge=0)] = 0
    sweep: SweepTag | None = None  # the reconcile sweep that queued it, told what became of it

    _check_key = field_validator("key")(_safe_key)

    @classmethod
    def continuation_of(
        cls, bucket: str, key: str, handed_over: int, *, sweep: str | None = None
    ) -> ObjectReference:
        """The message that resumes a document after its `handed_over`-th hand-over (for the sweep
        that queued it, if one did)."""
        return cls(key=key, bucket=bucket, continuation=handed_over + 1, sweep=sweep)

    def body(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


class InlineRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: Annotated[str, Field(min_length=1, max_length=512)]
    text: Annotated[str, Field(max_length=MAX_INLINE_CHARS), AfterValidator(encodable)]
    metadata: dict[str, Scalar] = {}
    model: Text | None = None

    _check_id = field_validator("id")(_safe_key)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @field_validator("metadata")
    @classmethod
    def _writable(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        # Metadata is copied into records and manifests: what strict JSON cannot hold is refused here.
        for name, item in value.items():
            encodable(name)
            if isinstance(item, str):
                encodable(item)
            elif isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{name!r} is {item}: only finite numbers are allowed")
        size = len(json.dumps(value, ensure_ascii=False).encode())
        if size > MAX_METADATA_BYTES:
            raise ValueError(
                f"is {size} bytes as JSON: at most {MAX_METADATA_BYTES} are kept with a document"
            )
        return value

    def body(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


class SweepStep(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    bucket: Bucket
    prefix: Annotated[str, AfterValidator(encodable)]
    sweep: SweepTag
    step: Annotated[int, Field(ge=0)]


class ReconcileStep(BaseModel):
    """The next step of a reconcile sweep, which each step hands to the next through the queue."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    reconcile: SweepStep

    def body(self) -> str:
        return self.model_dump_json()


def _kind(value: Any) -> str | None:
    """Which kind of message `value` means, from the field that tells them apart."""
    if isinstance(value, ObjectReference | InlineRecord | ReconcileStep):
        return {ObjectReference: "reference", InlineRecord: "inline", ReconcileStep: "reconcile"}[type(value)]
    if not isinstance(value, dict):
        return None
    if "key" in value:
        return "reference"
    if "reconcile" in value:
        return "reconcile"
    return "inline" if "id" in value or "text" in value else None


WorkMessage = ObjectReference | InlineRecord | ReconcileStep
WORK_MESSAGE: TypeAdapter[WorkMessage] = TypeAdapter(
    Annotated[
        Annotated[ObjectReference, Tag("reference")]
        | Annotated[InlineRecord, Tag("inline")]
        | Annotated[ReconcileStep, Tag("reconcile")],
        Discriminator(
            _kind,
            custom_error_type="work_message_kind",
            custom_error_message=(
                'a work message should be an object with "key" (an object reference), '
                '"id" and "text" (an inline record) or "reconcile" (a step of a reconcile sweep)'
            ),
        ),
    ]
)
