"""Writing a large object in bounded memory: one PUT if it stays small, else a multipart upload.

`MultipartUploads` is the S3 API's multipart surface (create, upload a part, complete, abort);
`ObjectWriter` buffers writes and sends whole parts as they fill, so memory stays near one part.
CompleteMultipartUpload is the one request that is not idempotent (see `MultipartUploads.complete`).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.output_marks import OutputMarks
from embedding_pipeline.clients.s3_requests import S3Requests
from embedding_pipeline.clients.s3_responses import etag_of, free_sent_body, status_error, where
from embedding_pipeline.errors import StorageError

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last


class MultipartUploads:
    """The multipart requests of one bucket client."""

    def __init__(self, s3: S3Requests, marks: OutputMarks | None = None) -> None:
        self._s3 = s3
        self._marks = marks

    async def create(self, bucket: str, key: str, *, content_type: str) -> str:
        """Start an upload; its id."""
        headers = {"Content-Type": content_type, **(self._marks.headers(key) if self._marks else {})}
        _, body = await self._s3.send("POST", bucket, key, params={"uploads": ""}, headers=headers)
        try:
            return xml_replies.upload_id(body)
        except ValueError as exc:
            raise StorageError(f"POST {where(bucket, key)}: {exc}") from None

    async def upload_part(self, bucket: str, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Send part `number` (1-based); its ETag."""
        params = {"partNumber": str(number), "uploadId": upload_id}
        response, _ = await self._s3.send("PUT", bucket, key, params=params, content=data)
        return etag_of(response)

    async def complete(self, bucket: str, key: str, upload_id: str, part_etags: list[str]) -> str:
        """The object's ETag. Complete is not idempotent: a retry after a lost success gets
        NoSuchUpload. That counts as success only if the object now carries the ETag these parts add
        up to."""
        response, body = await self._s3.send(
            "POST",
            bucket,
            key,
            params={"uploadId": upload_id},
            content=xml_replies.complete_body(part_etags),
            headers={"Content-Type": "application/xml"},
            ok=(200, 404),
        )
        if response.status_code == 404:
            expected = multipart_etag(part_etags)
            current, _ = await self._s3.send("HEAD", bucket, key, ok=(200, 404))
            if expected is not None and current.status_code == 200 and etag_of(current) == expected:
                return expected
            raise status_error("POST", where(bucket, key), 404, body)
        if xml_replies.is_error(body):
            code, message = xml_replies.error(body)
            raise StorageError(f"POST {where(bucket, key)} (complete) failed after 200: {code}: {message}")
        return xml_replies.completed_etag(body) or etag_of(response)

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        params = {"uploadId": upload_id}
        await self._s3.send("DELETE", bucket, key, params=params, ok=(200, 204, 404))


class WholeObjects(Protocol):
    """Where an object that stayed under one part goes: a plain PUT (ObjectStorage.put)."""

    async def put(self, bucket: str, key: str, data: bytes, *, content_type: str = ...) -> str | None: ...


class ObjectWriter:
    """Buffers writes and uploads whole parts as they fill. Use it through `ObjectStorage.open_writer`."""

    def __init__(
        self,
        uploads: MultipartUploads,
        whole: WholeObjects,
        *,
        bucket: str,
        key: str,
        content_type: str,
        part_size: int,
    ) -> None:
        self._uploads = uploads
        self._whole = whole
        self._bucket = bucket
        self._key = key
        self._content_type = content_type
        self._part_size = max(part_size, MIN_PART_SIZE)
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._etags: list[str] = []
        self.etag: str | None = None  # set once the object is written, on leaving the block
        self.size = 0

    async def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._part_size:
            await self._upload_part()

    async def _upload_part(self) -> None:
        if self._upload_id is None:
            self._upload_id = await self._uploads.create(
                self._bucket, self._key, content_type=self._content_type
            )
        with memoryview(self._buffer) as view:  # one copy of the part, not a slice and then a copy
            part = bytes(view[: self._part_size])
        del self._buffer[: self._part_size]
        number = len(self._etags) + 1
        self._etags.append(
            await self._uploads.upload_part(self._bucket, self._key, self._upload_id, number, part)
        )
        del part
        free_sent_body(self._part_size)

    async def finish(self) -> None:
        if self._upload_id is None:
            self.etag = await self._whole.put(
                self._bucket, self._key, bytes(self._buffer), content_type=self._content_type
            )
            return
        while self._buffer:
            await self._upload_part()
        self.etag = await self._uploads.complete(self._bucket, self._key, self._upload_id, self._etags)
        self._upload_id = None

    async def abort(self) -> None:
        if self._upload_id is not None:
            await self._uploads.abort(self._bucket, self._key, self._upload_id)
            self._upload_id = None


def multipart_etag(etags: list[str]) -> str | None:
    """S3's multipart ETag: MD5 of the parts' MD5s, `-<count>`. None if a part ETag is no MD5 (SSE-KMS)."""
    try:
        digests = b"".join(bytes.fromhex(etag) for etag in etags)
    except ValueError:
        return None
    if len(digests) != 16 * len(etags):
        return None
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(etags)}"
