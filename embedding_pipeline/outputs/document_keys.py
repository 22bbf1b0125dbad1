"""The output keys of one document (layout.py says what each is), and which keys can be documents
at all: every output key, OUTPUT_PREFIX and suffix included, must fit Object Storage's limit."""

from __future__ import annotations

from dataclasses import dataclass

from embedding_pipeline.errors import UnsafeKey
from embedding_pipeline.outputs import names


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
        return f"{self.prefix}{self.document}{names.RECORDS}"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}{self.document}{names.MANIFEST}"

    @property
    def ocr(self) -> str:
        """The pages Vision OCR read from the source (pipeline/ocr.py)."""
        return f"{self.prefix}{self.document}{names.OCR}"

    @property
    def error(self) -> str:
        return f"{self.prefix}{names.ERRORS}{self.document}.json"

    @property
    def index_pending(self) -> str:
        """Marks the document for the vector index: its current records are not in it yet."""
        return f"{self.prefix}{names.INDEX_PENDING}{self.document}.json"

    @property
    def claim(self) -> str:
        """Which run embeds the document now (outputs/claims.py)."""
        return f"{self.prefix}{names.CLAIMS}{self.document}.json"

    @property
    def checkpoints(self) -> str:
        """The folder of the checkpoint's parts."""
        return f"{self.prefix}{names.CHECKPOINTS}{self.document}/"

    def checkpoint_part(self, run: str, number: int) -> str:
        """Part `number` of one run's checkpoint: named by the run too, so that two overlapping runs
        of the document never overwrite each other's parts (and the vectors they paid for)."""
        return f"{self.checkpoints}{run}-{number:06d}{names.RECORDS}"

    @property
    def submission(self) -> str:
        """An inline text kept beside its checkpoint, so that reconcile can finish it."""
        return f"{self.checkpoints}{names.SUBMISSION}"

    def owns_checkpoint_key(self, key: str) -> bool:
        """Whether `key` is a part or the submission of this document's checkpoint, and not of a
        document under it: `_checkpoints/x/` also begins `_checkpoints/x/y.md/`'s keys."""
        name = key.removeprefix(self.checkpoints)
        return len(name) < len(key) and "/" not in name

    def is_checkpoint_part(self, key: str) -> bool:
        return self.owns_checkpoint_key(key) and key.endswith(names.RECORDS)


# The most any output key adds to `{P}{K}`: `_checkpoints/` + `/000001.jsonl` (the error record's
# `_errors/` + `.json` and the manifest's `.manifest.json` add less).
_LONGEST_SUFFIX_BYTES = max(
    len(names.CHECKPOINTS) + len("/0123abcd-000001" + names.RECORDS),
    len(names.CHECKPOINTS) + len("/" + names.SUBMISSION),
    len(names.ERRORS) + len(".json"),
    len(names.INDEX_PENDING) + len(".json"),
    len(names.CLAIMS) + len(".json"),
    len(names.MANIFEST),
    len(names.OCR),
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
    room = names.MAX_KEY_BYTES - len(output_prefix.encode("utf-8")) - _LONGEST_SUFFIX_BYTES
    if size > room:
        raise UnsafeKey(
            f"object key is {size} bytes: its output keys would exceed Object Storage's "
            f"{names.MAX_KEY_BYTES}-byte limit (at most {room} bytes with OUTPUT_PREFIX={output_prefix!r})"
        )
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        raise UnsafeKey("object key contains control characters")
    if key.startswith("/") or any(segment in (".", "..") for segment in key.split("/")):
        # Path-style URLs resolve `.` and `..` (RFC 3986): such a key would address another object.
        raise UnsafeKey("object key is absolute or contains a '.' or '..' segment")
