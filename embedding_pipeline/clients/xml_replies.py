"""The XML that Object Storage (S3 API) and Message Queue (SQS API) answer with, and the one body the
storage client sends (CompleteMultipartUpload); read and written with the standard library."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote_plus
from xml.sax.saxutils import escape

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True, slots=True)
class ListPage:
    objects: list[tuple[str, int, str, str | None]]  # key, size, etag, last modified
    continuation_token: str | None


def _root(data: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(data)  # noqa: S314 - the response of our own endpoint; no DTDs are expanded
    except ET.ParseError:
        return None


def _text(element: ET.Element | None, name: str) -> str | None:
    if element is None:
        return None
    found = element.find(_NS + name)
    if found is None:
        found = element.find(name)
    return found.text if found is not None else None


def _local_name(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def find_text(data: bytes, name: str) -> str | None:
    """The text of the first element named `name` anywhere in the document, any namespace."""
    root = _root(data)
    if root is None:
        return None
    for element in root.iter():
        if element.tag == name or element.tag.endswith("}" + name):
            return (element.text or "").strip()
    return None


def error(data: bytes) -> tuple[str, str]:
    """(Code, Message) of an S3 or SQS error body (the latter nests them in <Error>), else placeholders."""
    return (find_text(data, "Code") or "UnknownError", (find_text(data, "Message") or "")[:300])


def batch_failures(data: bytes) -> dict[str, str]:
    """The entries a SendMessageBatch reply says failed: {entry Id: "Code: Message"}."""
    root = _root(data)
    if root is None:
        raise ValueError("not an XML document")
    failed = {}
    for element in root.iter():
        if _local_name(element) == "BatchResultErrorEntry":
            fields = {_local_name(child): (child.text or "").strip() for child in element}
            failed[fields.get("Id", "")] = (
                f"{fields.get('Code', 'UnknownError')}: {fields.get('Message', '')}"
            )
    return failed


def is_error(data: bytes) -> bool:
    """Whether a body is an S3 <Error> document: CompleteMultipartUpload can fail after a 200 status."""
    root = _root(data)
    return root is not None and _local_name(root) == "Error"


def list_page(data: bytes) -> ListPage:
    """One ListObjectsV2 page.

    Raises ValueError for anything else: read as an empty page it would claim the bucket is empty.
    Keys are URL-decoded when the server applied `encoding-type=url` (asked for because XML 1.0
    cannot carry control characters in keys); S3 writes a space there as `+` and `+` as `%2B`.
    """
    root = _root(data)
    if root is None or _local_name(root) != "ListBucketResult":
        raise ValueError("not a ListBucketResult document")
    url_encoded = (_text(root, "EncodingType") or "").lower() == "url"
    objects = []
    for item in root.iter(_NS + "Contents"):
        key = _text(item, "Key") or ""
        objects.append(
            (
                unquote_plus(key) if url_encoded else key,
                int(_text(item, "Size") or 0),
                (_text(item, "ETag") or "").strip('"'),
                _text(item, "LastModified"),
            )
        )
    truncated = (_text(root, "IsTruncated") or "false").lower() == "true"
    token = _text(root, "NextContinuationToken") if truncated else None
    if truncated and not token:
        raise ValueError("a truncated listing without a NextContinuationToken")
    return ListPage(objects, token)


def upload_id(data: bytes) -> str:
    value = _text(_root(data), "UploadId")
    if not value:
        raise ValueError("CreateMultipartUpload answered without an UploadId")
    return value


def complete_body(etags: list[str]) -> bytes:
    parts = "".join(
        f'<Part><PartNumber>{number}</PartNumber><ETag>"{escape(etag)}"</ETag></Part>'
        for number, etag in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def completed_etag(data: bytes) -> str:
    return (_text(_root(data), "ETag") or "").strip('"')
