"""Which buckets and keys the function may touch, and where outputs go: the one owner of these rules.

- **The default bucket** is where work that names no bucket lands: inline texts, parked queue
  messages, the instances' quota announcements. OUTPUT_BUCKET if set, else SOURCE_BUCKET.
- **Nameable buckets**: a queue message or an HTTP submission may name only SOURCE_BUCKET,
  OUTPUT_BUCKET or one of EXTRA_SOURCE_BUCKETS. Nobody can point the function (and its service
  account's rights) at a bucket the operator did not configure.
- **Sources**: a key is a source when it lies under SOURCE_PREFIX and not under OUTPUT_PREFIX, in any
  bucket: outputs are never embedded again, whoever asks (an upload event, a reference, a sweep).
  Nor is a key that starts with a name the function keeps for its own areas (`_inline/`, `_errors/`,
  ...: outputs/names.py), which only an empty SOURCE_PREFIX allows: its outputs would collide.
  Nor is a metadata sidecar, `KEY.metadata.json`: it belongs to the document `KEY`
  (stages/documents/metadata.py), whose run reads it; an event for it re-processes `KEY`.
- **Where outputs go**: to OUTPUT_BUCKET, else beside their source, under OUTPUT_PREFIX; a source
  bucket that shares OUTPUT_BUCKET with others gets an area of its own (`{P}_buckets/{bucket}/`), so
  that the same key in two buckets is two documents. SOURCE_BUCKET's outputs stay where a
  single-bucket deployment always put them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from embedding_pipeline.errors import ConfigurationError
from embedding_pipeline.outputs.names import reserved
from embedding_pipeline.settings import Settings

if TYPE_CHECKING:
    from embedding_pipeline.outputs.layout import OutputLayout


class WorkRefused(Exception):
    """A well-formed request the pipeline will not act on; `code` says why in a word."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True, slots=True)
class NotASource:
    """Why a key is no source: `code` in a word (for logs), `reason` in a sentence."""

    code: str
    reason: str


SIDECAR_SUFFIX = ".metadata.json"


def sidecar_key(key: str) -> str:
    """Where the metadata sidecar of the document `key` lies."""
    return key + SIDECAR_SUFFIX


def document_of_sidecar(key: str) -> str | None:
    """The document a sidecar key belongs to; None for a key that is no sidecar."""
    document = key.removesuffix(SIDECAR_SUFFIX)
    if document == key or not document or document.endswith("/"):
        return None
    return document


def default_bucket(settings: Settings) -> str | None:
    return settings.output_bucket or settings.source_bucket


def require_default_bucket(settings: Settings, needs: str) -> str:
    """The default bucket; ConfigurationError naming what needs it when none is configured."""
    bucket = default_bucket(settings)
    if bucket is None:
        raise ConfigurationError(f"{needs} needs OUTPUT_BUCKET or SOURCE_BUCKET")
    return bucket


def extra_buckets(settings: Settings) -> tuple[str, ...]:
    """EXTRA_SOURCE_BUCKETS, in the order given."""
    names = (settings.extra_source_buckets or "").split(",")
    return tuple(name.strip() for name in names if name.strip())


def bucket_refusal(settings: Settings, bucket: str) -> str | None:
    """Why a message or submission may not name this bucket, or None if it may."""
    named = {settings.source_bucket, settings.output_bucket, *extra_buckets(settings)}
    if bucket in named - {None}:
        return None
    return f"bucket {bucket!r} is neither SOURCE_BUCKET nor in EXTRA_SOURCE_BUCKETS"


def not_a_source(settings: Settings, key: str) -> NotASource | None:
    """Why `key` is no source in any bucket, or None when it is one."""
    if key.startswith(settings.output_prefix):
        return NotASource(
            "output_prefix",
            f"key {key!r} is under OUTPUT_PREFIX ({settings.output_prefix!r}): outputs are never sources",
        )
    if not key.startswith(settings.source_prefix):
        return NotASource(
            "outside_source_prefix", f"key {key!r} is not under SOURCE_PREFIX ({settings.source_prefix!r})"
        )
    if document_of_sidecar(key) is not None:
        return NotASource("sidecar", f"key {key!r} is the metadata sidecar of {document_of_sidecar(key)!r}")
    if reserved(key):
        # Its outputs would be named like the function's own areas' (`_errors/...`, `_inline/...`),
        # which only an empty SOURCE_PREFIX lets a source key start with.
        return NotASource(
            "reserved_name", f"key {key!r} starts with a name the function keeps for its own outputs"
        )
    return None


def reference_bucket(settings: Settings, key: str, bucket: str | None) -> str:
    """The bucket a reference to `key` (in `bucket`, else SOURCE_BUCKET) is read from; WorkRefused
    when it names a bucket or a key the function may not read."""
    bucket = bucket or settings.source_bucket
    if bucket is None:
        raise WorkRefused("no bucket in the message and SOURCE_BUCKET is not set", "bucket_required")
    if (refusal := bucket_refusal(settings, bucket)) is not None:
        raise WorkRefused(refusal, "bucket_not_allowed")
    if (found := not_a_source(settings, key)) is not None:
        raise WorkRefused(found.reason, "key_not_allowed")
    return bucket


def sweep_refusal(settings: Settings, bucket: str, prefix: str) -> WorkRefused | None:
    """Why a sweep over `bucket` and `prefix` may not run (reconcile embeds what it lists: a prefix
    outside SOURCE_PREFIX would embed private objects), or None."""
    if (refusal := bucket_refusal(settings, bucket)) is not None:
        return WorkRefused(refusal, "bucket_not_allowed")
    if not prefix.startswith(settings.source_prefix):
        return WorkRefused(f"prefix {prefix!r} is outside SOURCE_PREFIX", "key_not_allowed")
    return None


def output_bucket_for(settings: Settings, source_bucket: str) -> str:
    """Outputs go to OUTPUT_BUCKET, else beside their source."""
    return settings.output_bucket or source_bucket


def output_layout(settings: Settings, source_bucket: str) -> OutputLayout:
    """Where the outputs of sources in `source_bucket` go (see the module docstring)."""
    # Imported here: the HTTP embeddings route, the most frequent cold start, writes no outputs.
    from embedding_pipeline.outputs.layout import OutputLayout, shared_area  # noqa: PLC0415

    output_bucket = output_bucket_for(settings, source_bucket)
    if _shares_output_area(settings, source_bucket):
        return shared_area(output_bucket, settings.output_prefix, source_bucket)
    return OutputLayout(output_bucket, settings.output_prefix)


def status_buckets(settings: Settings) -> tuple[str, ...]:
    """Where a document's outputs may be when its bucket is not named: the default bucket, and the
    extra source buckets when outputs lie beside their sources."""
    bucket = require_default_bucket(settings, "looking documents up")
    others = () if settings.output_bucket else extra_buckets(settings)
    return (bucket, *others)


def _shares_output_area(settings: Settings, source_bucket: str) -> bool:
    """Whether this bucket's outputs need an area of their own in OUTPUT_BUCKET: more than one bucket
    can feed it (EXTRA_SOURCE_BUCKETS, or a message naming OUTPUT_BUCKET), and this one is not
    SOURCE_BUCKET."""
    if settings.output_bucket is None or source_bucket == settings.source_bucket:
        return False
    return settings.source_bucket is not None or bool(extra_buckets(settings))
