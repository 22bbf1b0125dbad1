"""Where every output lives: the one module that builds output keys and reads them back.

For a source `s3://B/K` (K under SOURCE_PREFIX), in the output bucket (OUTPUT_BUCKET, else B), with
P = OUTPUT_PREFIX:
    {P}{K}.jsonl                       records: one JSON line per chunk, written first
    {P}{K}.manifest.json               written last: vouches that the records are complete and current
    {P}{K}.ocr.json                    the pages Vision OCR read from this version of the source, and
                                       its operations under way (pipeline/ocr.py): never paid for twice
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
    {P}_quota/ocr/...                  the same for Vision OCR's quota
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
from embedding_pipeline.outputs import names
from embedding_pipeline.outputs.document_keys import DocumentKeys, validate_source_key
from embedding_pipeline.outputs.names import inline_document

OutputKind = Literal[
    "records",
    "manifest",
    "ocr",
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
        return self.document is not None and self.document.startswith(names.INLINE)


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
            return f"{self.prefix}{document}/{names.LAST_CHECKPOINT_NAME}"
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
    # The folder where instances sharing a quota meet (quota_share.py): the embeddings quota's, or
    # `_quota/ocr/` for Vision OCR's.
    quota_board: str = names.QUOTA

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
        return f"{self.prefix}{names.REFUSED}{digest}.json"

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
        return f"{self.prefix}{names.QUEUE_ERRORS}{name or 'message'}.json"

    def report(self, started_at: str) -> str:
        return f"{self.prefix}{names.REPORTS}{started_at.replace(':', '-')}.json"

    @property
    def cursor(self) -> str:
        return f"{self.prefix}{names.CURSOR}"

    @property
    def quota_members(self) -> str:
        """The folder of the announcements of instances that share the embeddings quota."""
        return f"{self.prefix}{self.quota_board}{names.QUOTA_MEMBERS}"

    def quota_member(self, instance: str) -> str:
        return f"{self.quota_members}{instance}"

    @property
    def quota_estimate(self) -> str:
        return f"{self.prefix}{self.quota_board}{names.QUOTA_ESTIMATE}"

    @property
    def records_and_manifests(self) -> OutputArea:
        return OutputArea(self.prefix, (names.RECORDS, names.MANIFEST, names.OCR))

    @property
    def errors(self) -> OutputArea:
        return OutputArea(self.prefix + names.ERRORS, (".json",))

    @property
    def index_marks(self) -> OutputArea:
        return OutputArea(self.prefix + names.INDEX_PENDING, (".json",))

    @property
    def checkpoint_folders(self) -> OutputArea:
        return OutputArea(self.prefix + names.CHECKPOINTS, (), folder=True)

    @property
    def sweeps(self) -> str:
        """The folder of the sweeps' states (and their results, in folders of their own)."""
        return f"{self.prefix}{names.SWEEPS}"

    def sweep_state(self, prefix_id: str) -> str:
        """The state (and lease) of the sweep over one bucket and prefix, `prefix_id` naming the pair."""
        return f"{self.prefix}{names.SWEEPS}{prefix_id}.json"

    @property
    def sweep_order_probes(self) -> str:
        """The folder of two objects whose listing tells the server's key order (reconcile/order.py)."""
        return f"{self.prefix}{names.SWEEPS}order/"

    def sweep_results(self, prefix_id: str, sweep: str) -> str:
        """The folder of what the queue's instances did with the documents one sweep queued."""
        return f"{self.prefix}{names.SWEEPS}{prefix_id}/{sweep}/"

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
    if name.startswith(names.BUCKETS):
        kind = None  # another source bucket's own output area: none of this one's
    elif name.startswith(names.QUEUE_ERRORS):
        kind = "queue_error"
    elif name.startswith(names.REFUSED):
        kind = "refusal" if name.endswith(".json") else None
    elif name == names.CURSOR:
        kind = "cursor"
    elif name.startswith(names.REPORTS):
        kind = "report" if name.endswith(".json") else None
    elif name.startswith(names.ERRORS):
        if name.endswith(".json"):
            kind, document = "error", name[len(names.ERRORS) : -len(".json")]
    elif name.startswith(names.INDEX_PENDING):
        if name.endswith(".json"):
            kind, document = "index_pending", name[len(names.INDEX_PENDING) : -len(".json")]
    elif name.startswith(names.CHECKPOINTS):
        document = name[len(names.CHECKPOINTS) :].rpartition("/")[0]
        kind = "checkpoint" if document else None
    else:
        return _parse_document_output(name)
    return None if kind is None else OutputKey(kind, document)


def _parse_document_output(name: str) -> OutputKey | None:
    """A document's records, manifest or OCR'd pages, named `{document}{suffix}`."""
    suffixes: tuple[tuple[str, OutputKind], ...] = (
        (names.OCR, "ocr"),
        (names.MANIFEST, "manifest"),
        (names.RECORDS, "records"),
    )
    if names.names_output_area(name):
        # An area's own object (`_claims/x.ocr.json`, the claim of document `x.ocr`) is no
        # document's output, whatever its name ends with.
        return None
    for suffix, kind in suffixes:
        if name.endswith(suffix):
            return OutputKey(kind, name[: -len(suffix)])
    return None


def shared_area(bucket: str, prefix: str, source_bucket: str) -> OutputLayout:
    """The output area of one source bucket among several that share `bucket` (bucket_policy.py)."""
    return OutputLayout(bucket, f"{prefix}{names.BUCKETS}{source_bucket}/", source_bucket)
