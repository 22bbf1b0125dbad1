"""The pieces output keys are made of (layout.py says what each output is and where it lies): the
suffixes of a document's outputs and the folders of the output areas under OUTPUT_PREFIX."""

from __future__ import annotations

MAX_KEY_BYTES = 1024  # Object Storage's limit, for sources and outputs alike

RECORDS = ".jsonl"
MANIFEST = ".manifest.json"
OCR = ".ocr.json"  # the pages Vision OCR read, kept by the source's ETag (pipeline/ocr.py)
ERRORS = "_errors/"
QUEUE_ERRORS = "_errors/_queue/"
REFUSED = "_errors/_refused/"
SUBMISSION = "submission.json"
CHECKPOINTS = "_checkpoints/"
INLINE = "_inline/"
REPORTS = "_reports/"
CURSOR = "_reports/cursor.json"
INDEX_PENDING = "_index/"
CLAIMS = "_claims/"
QUOTA = "_quota/"  # the embeddings quota's board; Vision OCR's is QUOTA + OCR_QUOTA
OCR_QUOTA = "ocr/"
QUOTA_MEMBERS = "members/"  # under a board
QUOTA_ESTIMATE = "estimate.json"
SWEEPS = "_sweeps/"
BUCKETS = "_buckets/"
# Names under the prefix that are output areas, not documents: a status lookup of one is refused.
AREAS = (ERRORS, CHECKPOINTS, REPORTS, INDEX_PENDING, CLAIMS, QUOTA, SWEEPS, BUCKETS)
# The first folders of documents' names that are the function's own: a source key starting with one
# would name outputs that collide with an area's (with SOURCE_PREFIX empty, say) and is no source.
RESERVED = (*AREAS, INLINE)
# A checkpoint part's name after the document's folder: `{run}-NNNNNN.jsonl` or `submission.json`;
# no name sorts after this one.
LAST_CHECKPOINT_NAME = SUBMISSION


def inline_document(record_id: str) -> str:
    """The document an inline record becomes: its outputs are named after this."""
    return INLINE + record_id


def reserved(key: str) -> bool:
    """Whether a key's first folder is one of the function's own areas (`RESERVED`)."""
    return key.startswith(RESERVED)


def names_output_area(document: str) -> bool:
    """Whether a document name points into an output area (`_errors/...`) rather than at a document."""
    return document.startswith(AREAS)
