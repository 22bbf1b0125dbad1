"""Where every output lives: the one module that builds output keys and reads them back.

For a source `s3://B/K` (K under SOURCE_PREFIX), in the output bucket (OUTPUT_BUCKET, else B), with
P = OUTPUT_PREFIX:
    {P}{K}.jsonl                       records: one JSON line per chunk, written first
    {P}{K}.manifest.json               written last: vouches that the records are complete and current
    {P}_errors/{K}.json                why the source cannot be processed (the document is parked)
    {P}_checkpoints/{K}/{run}-NNNNNN.jsonl  vectors of an unfinished run, deleted when it completes
    {P}_checkpoints/{K}/submission.json  an inline text whose run stopped early, for reconcile to finish
    {P}_index/{K}.json                 the vector index could not take the current records: reconcile
                                       writes them (vector_index/follow.py)
An inline text (a queue message or an HTTP submission) with id I is the document `_inline/I`: its
outputs are named as above with K = `_inline/I`, in the default bucket. For the whole bucket:
    {P}_errors/_queue/{message}.json   a poisoned queue message, with its reason and raw body
    {P}_errors/_refused/{sha256}.json  a source whose key cannot have outputs (too long, unsafe): its
                                       error record, named by the key's hash so that it always fits
    {P}_reports/{UTC time}.json        the report of one reconcile run
    {P}_reports/cursor.json            (left by versions before sweeps: not a report)
    {P}_quota/members/{instance}       an instance embedding in bulk now, rewritten every second
    {P}_quota/estimate.json            the quota's capacity as the member refused last estimated it
(the last two in the default bucket's output area: quota_share.py)
    {P}_sweeps/{prefix_id}.json            the reconcile sweep under way over one bucket and prefix: its
                                       lease, where its next page starts, its totals so far
    {P}_sweeps/{prefix_id}/{sweep}/{batch}.json  what the queue's instances did with documents that
                                       sweep queued, one object per batch, until the sweep reads it
    {P}_sweeps/order/a/b, .../a-b      two empty objects whose listing tells the server's key order
(pipeline/reconcile/).
When OUTPUT_BUCKET is shared by several source buckets (EXTRA_SOURCE_BUCKETS), the sources of each
bucket but SOURCE_BUCKET have an output area of their own, P = `{OUTPUT_PREFIX}_buckets/{bucket}/`,
laid out as above: the same key in two buckets is two documents.

Every document's outputs are a fixed area's prefix, the document's key, and a suffix from a fixed
set (`OutputArea`), so the outputs of a range of documents lie in a range of each area: reconcile
lists a page of documents through those ranges (pipeline/reconcile/ranges.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from embedding_pipeline.errors import UnsafeKey

MAX_KEY_BYTES = 1024  # Object Storage's limit, for sources and outputs alike

_RECORDS = ".jsonl"
_MANIFEST = ".manifest.json"
_ERRORS = "_errors/"
_QUEUE_ERRORS = "_errors/_queue/"
_REFUSED = "_errors/_refused/"
_SUBMISSION = "submission.json"
_CHECKPOINTS = "_checkpoints/"
_INLINE = "_inline/"
_REPORTS = "_reports/"
_CURSOR = "_reports/cursor.json"
_INDEX_PENDING = "_index/"
_QUOTA_MEMBERS = "_quota/members/"
_QUOTA_ESTIMATE = "_quota/estimate.json"
_SWEEPS = "_sweeps/"
_BUCKETS = "_buckets/"
# Names under the prefix that are output areas, not documents: a status lookup of one is refused.
_AREAS = (_ERRORS, _CHECKPOINTS, _REPORTS, _INDEX_PENDING, "_quota/", _SWEEPS, _BUCKETS)
# A checkpoint part's name after the document's folder: `{run}-NNNNNN.jsonl` or `submission.json`;
# no name sorts after this one.
_LAST_CHECKPOINT_NAME = _SUBMISSION

OutputKind = Literal[
    "records",
    "manifest",
    "error",
    "checkpoint",
    "queue_error",
    "refusal",
    "report",
    "cursor",
    "index_pending",
]


@dataclass(frozen=True, slots=True)
class OutputKey:
    """An output key read back: what it is, and the document it belongs to (None for bucket-wide ones)."""

    kind: OutputKind
    document: str | None = None

    @property
    def inline(self) -> bool:
        return self.document is not None and self.document.startswith(_INLINE)


@dataclass(frozen=True, slots=True)
class DocumentKeys:
    """The output keys of one document."""

    bucket: str
    prefix: str
    document: str  # the source key, or `_inline/{id}`
    index_area: str | None = None  # the layout's, when it is one source bucket's own area

    @property
    def index_scope(self) -> str:
        """What the vector index files this document's rows under beside its name (`OutputLayout`)."""
        return self.index_area or self.bucket

    @property
    def records(self) -> str:
        return f"{self.prefix}{self.document}{_RECORDS}"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}{self.document}{_MANIFEST}"

    @property
    def error(self) -> str:
        return f"{self.prefix}{_ERRORS}{self.document}.json"

    @property
    def index_pending(self) -> str:
        """Marks the document for the vector index: its current records are not in it yet."""
        return f"{self.prefix}{_INDEX_PENDING}{self.document}.json"

    @property
    def checkpoints(self) -> str:
        """The folder of the checkpoint's parts."""
        return f"{self.prefix}{_CHECKPOINTS}{self.document}/"

    def checkpoint_part(self, run: str, number: int) -> str:
        """Part `number` of one run's checkpoint: named by the run too, so that two overlapping runs
        of the document never overwrite each other's parts (and the vectors they paid for)."""
        return f"{self.checkpoints}{run}-{number:06d}{_RECORDS}"

    @property
    def submission(self) -> str:
        """An inline text kept beside its checkpoint, so that reconcile can finish it."""
        return f"{self.checkpoints}{_SUBMISSION}"

    def owns_checkpoint_key(self, key: str) -> bool:
        """Whether `key` is a part or the submission of this document's checkpoint, and not of a
        document under it: `_checkpoints/x/` also begins `_checkpoints/x/y.md/`'s keys."""
        name = key.removeprefix(self.checkpoints)
        return len(name) < len(key) and "/" not in name

    def is_checkpoint_part(self, key: str) -> bool:
        return self.owns_checkpoint_key(key) and key.endswith(_RECORDS)


@dataclass(frozen=True, slots=True)
class OutputArea:
    """Where one kind of output of every document lives: `{prefix}{document}{suffix}`, with the
    suffix one of `suffixes`; a folder area (checkpoints) has `{prefix}{document}/{name}` keys."""

    prefix: str
    suffixes: tuple[str, ...]
    folder: bool = False

    def last_key(self, document: str) -> str:
        """The greatest key any output of `document` can have in this area."""
        if self.folder:
            return f"{self.prefix}{document}/{_LAST_CHECKPOINT_NAME}"
        return self.prefix + document + max(self.suffixes)

    def keys(self, document: str) -> tuple[str, ...]:
        """Every key `document` can have here (not for a folder area: its names vary)."""
        return tuple(self.prefix + document + suffix for suffix in self.suffixes)


@dataclass(frozen=True, slots=True)
class OutputLayout:
    """The output area of one bucket: everything under OUTPUT_PREFIX in the output bucket."""

    bucket: str
    prefix: str
    # Set when this is the own area (`{P}_buckets/{bucket}/`) of a source bucket that shares the
    # output bucket with others.
    source_bucket: str | None = None

    @property
    def index_scope(self) -> str:
        """Where the vector index files this area's rows (its `output_bucket` column): the output
        bucket, or `{bucket}/{source bucket}` for a source bucket's own area, so that the same key
        in two buckets is two documents there too. A single-bucket deployment's rows stay as they were."""
        return self.bucket if self.source_bucket is None else f"{self.bucket}/{self.source_bucket}"

    def document(self, key: str) -> DocumentKeys:
        return DocumentKeys(self.bucket, self.prefix, key, self.source_bucket and self.index_scope)

    def inline(self, record_id: str) -> DocumentKeys:
        return DocumentKeys(self.bucket, self.prefix, inline_document(record_id))

    def refusal(self, key: str) -> str:
        """The error record of a source that cannot have outputs: named by the key's hash, it fits."""
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{self.prefix}{_REFUSED}{digest}.json"

    def key_refusal(self, key: str) -> str | None:
        """Why `key` cannot be a document here (its output keys would be invalid), or None."""
        try:
            validate_source_key(key, output_prefix=self.prefix)
        except UnsafeKey as exc:
            return str(exc)
        return None

    def queue_error(self, message_id: str) -> str:
        """A parked message's key: the id kept to letters, digits, `-_.` (ids are the sender's choice)."""
        name = "".join(char if char.isalnum() or char in "-_." else "_" for char in message_id)[:200]
        return f"{self.prefix}{_QUEUE_ERRORS}{name or 'message'}.json"

    def report(self, started_at: str) -> str:
        return f"{self.prefix}{_REPORTS}{started_at.replace(':', '-')}.json"

    @property
    def cursor(self) -> str:
        return f"{self.prefix}{_CURSOR}"

    @property
    def quota_members(self) -> str:
        """The folder of the announcements of instances that share the embeddings quota."""
        return f"{self.prefix}{_QUOTA_MEMBERS}"

    def quota_member(self, instance: str) -> str:
        return f"{self.prefix}{_QUOTA_MEMBERS}{instance}"

    @property
    def quota_estimate(self) -> str:
        return f"{self.prefix}{_QUOTA_ESTIMATE}"

    @property
    def records_and_manifests(self) -> OutputArea:
        return OutputArea(self.prefix, (_RECORDS, _MANIFEST))

    @property
    def errors(self) -> OutputArea:
        return OutputArea(self.prefix + _ERRORS, (".json",))

    @property
    def index_marks(self) -> OutputArea:
        return OutputArea(self.prefix + _INDEX_PENDING, (".json",))

    @property
    def checkpoint_folders(self) -> OutputArea:
        return OutputArea(self.prefix + _CHECKPOINTS, (), folder=True)

    @property
    def sweeps(self) -> str:
        """The folder of the sweeps' states (and their results, in folders of their own)."""
        return f"{self.prefix}{_SWEEPS}"

    def sweep_state(self, prefix_id: str) -> str:
        """The state (and lease) of the sweep over one bucket and prefix, `prefix_id` naming the pair."""
        return f"{self.prefix}{_SWEEPS}{prefix_id}.json"

    @property
    def sweep_order_probes(self) -> str:
        """The folder of two objects whose listing tells the server's key order (reconcile/order.py)."""
        return f"{self.prefix}{_SWEEPS}order/"

    def sweep_results(self, prefix_id: str, sweep: str) -> str:
        """The folder of what the queue's instances did with the documents one sweep queued."""
        return f"{self.prefix}{_SWEEPS}{prefix_id}/{sweep}/"

    def sweep_result(self, prefix_id: str, sweep: str, batch: str) -> str:
        return f"{self.sweep_results(prefix_id, sweep)}{batch}.json"

    def holds(self, bucket: str, key: str) -> bool:
        """Whether `s3://bucket/key` is one of these outputs (the function wrote it: never a source)."""
        return bucket == self.bucket and key.startswith(self.prefix)

    def parse(self, key: str) -> OutputKey | None:
        """What an output key is, and whose; None for anything else."""
        return _parse_name(key[len(self.prefix) :]) if key.startswith(self.prefix) else None


def _parse_name(name: str) -> OutputKey | None:
    kind: OutputKind | None = None
    document: str | None = None
    if name.startswith(_BUCKETS):
        kind = None  # another source bucket's own output area: none of this one's
    elif name.startswith(_QUEUE_ERRORS):
        kind = "queue_error"
    elif name.startswith(_REFUSED):
        kind = "refusal" if name.endswith(".json") else None
    elif name == _CURSOR:
        kind = "cursor"
    elif name.startswith(_REPORTS):
        kind = "report" if name.endswith(".json") else None
    elif name.startswith(_ERRORS):
        if name.endswith(".json"):
            kind, document = "error", name[len(_ERRORS) : -len(".json")]
    elif name.startswith(_INDEX_PENDING):
        if name.endswith(".json"):
            kind, document = "index_pending", name[len(_INDEX_PENDING) : -len(".json")]
    elif name.startswith(_CHECKPOINTS):
        document = name[len(_CHECKPOINTS) :].rpartition("/")[0]
        kind = "checkpoint" if document else None
    elif name.endswith(_MANIFEST):
        kind, document = "manifest", name[: -len(_MANIFEST)]
    elif name.endswith(_RECORDS):
        kind, document = "records", name[: -len(_RECORDS)]
    return None if kind is None else OutputKey(kind, document)


def shared_area(bucket: str, prefix: str, source_bucket: str) -> OutputLayout:
    """The output area of one source bucket among several that share `bucket` (bucket_policy.py)."""
    return OutputLayout(bucket, f"{prefix}{_BUCKETS}{source_bucket}/", source_bucket)


def inline_document(record_id: str) -> str:
    """The document an inline record becomes: its outputs are named after this."""
    return _INLINE + record_id


def names_output_area(document: str) -> bool:
    """Whether a document name points into an output area (`_errors/...`) rather than at a document."""
    return document.startswith(_AREAS)


# The most any output key adds to `{P}{K}`: `_checkpoints/` + `/000001.jsonl` (the error record's
# `_errors/` + `.json` and the manifest's `.manifest.json` add less).
_LONGEST_SUFFIX_BYTES = max(
    len(_CHECKPOINTS) + len("/0123abcd-000001" + _RECORDS),
    len(_CHECKPOINTS) + len("/" + _SUBMISSION),
    len(_ERRORS) + len(".json"),
    len(_INDEX_PENDING) + len(".json"),
    len(_MANIFEST),
)


def validate_source_key(key: str, *, output_prefix: str = "") -> None:
    """Refuse keys the pipeline will not derive output keys (or local paths) from: every output key
    of the document, OUTPUT_PREFIX and suffix included, must stay within Object Storage's limit."""
    if not key:
        raise UnsafeKey("object key is empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeKey("object key is not valid Unicode (a lone surrogate)") from None
    room = MAX_KEY_BYTES - len(output_prefix.encode("utf-8")) - _LONGEST_SUFFIX_BYTES
    if size > room:
        raise UnsafeKey(
            f"object key is {size} bytes: its output keys would exceed Object Storage's "
            f"{MAX_KEY_BYTES}-byte limit (at most {room} bytes with OUTPUT_PREFIX={output_prefix!r})"
        )
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise UnsafeKey("object key contains control characters")
    if key.startswith("/") or any(segment in (".", "..") for segment in key.split("/")):
        # Path-style URLs resolve `.` and `..` (RFC 3986): such a key would address another object.
        raise UnsafeKey("object key is absolute or contains a '.' or '..' segment")
