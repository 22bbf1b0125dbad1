"""Writing a large object in bounded memory: one PUT if it stays small, else a multipart upload.

Parts go out as they fill, so memory stays near one part. CompleteMultipartUpload is the one
request that is not idempotent (see `_complete`).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from embedding_pipeline.clients import xml_replies
from embedding_pipeline.clients.s3_responses import etag_of, free_sent_body, status_error, where
from embedding_pipeline.errors import StorageError

if TYPE_CHECKING:
    from embedding_pipeline.clients.storage import ObjectStorage

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's minimum for every part but the last


class ObjectWriter:
    """Buffers writes and uploads whole parts as they fill. Use it through `ObjectStorage.open_writer`."""

    def __init__(
        self, storage: ObjectStorage, bucket: str, key: str, content_type: str, part_size: int
    ) -> None:
        self._storage = storage
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
        bucket, key, send = self._bucket, self._key, self._storage._send
        if self._upload_id is None:
            headers = {"Content-Type": self._content_type}
            _, body = await send("POST", bucket, key, params={"uploads": ""}, headers=headers)
            try:
                self._upload_id = xml_replies.upload_id(body)
            except ValueError as exc:
                raise StorageError(f"POST {where(bucket, key)}: {exc}") from None
        with memoryview(self._buffer) as view:  # one copy of the part, not a slice and then a copy
            part = bytes(view[: self._part_size])
        del self._buffer[: self._part_size]
        params = {"partNumber": str(len(self._etags) + 1), "uploadId": self._upload_id}
        response, _ = await send("PUT", bucket, key, params=params, content=part)
        self._etags.append(etag_of(response))
        del response, part
        free_sent_body(self._part_size)

    async def finish(self) -> None:
        if self._upload_id is None:
            self.etag = await self._storage.put(
                self._bucket, self._key, bytes(self._buffer), content_type=self._content_type
            )
            return
        while self._buffer:
            await self._upload_part()
        self.etag = await self._complete(self._upload_id)
        self._upload_id = None

    async def abort(self) -> None:
        if self._upload_id is not None:
            params = {"uploadId": self._upload_id}
            await self._storage._send("DELETE", self._bucket, self._key, params=params, ok=(200, 204, 404))
            self._upload_id = None

    async def _complete(self, upload_id: str) -> str:
        """Complete is not idempotent: a retry after a lost success gets NoSuchUpload. That counts as
        success only if the object now carries the ETag these parts add up to."""
        bucket, key, etags = self._bucket, self._key, self._etags
        response, body = await self._storage._send(
            "POST",
            bucket,
            key,
            params={"uploadId": upload_id},
            content=xml_replies.complete_body(etags),
            headers={"Content-Type": "application/xml"},
            ok=(200, 404),
        )
        if response.status_code == 404:
            expected = multipart_etag(etags)
            current = await self._storage.head(bucket, key)
            if expected is not None and current is not None and current.etag == expected:
                return expected
            raise status_error("POST", where(bucket, key), 404, body)
        if xml_replies.is_error(body):
            code, message = xml_replies.error(body)
            raise StorageError(f"POST {where(bucket, key)} (complete) failed after 200: {code}: {message}")
        return xml_replies.completed_etag(body) or etag_of(response)


def multipart_etag(etags: list[str]) -> str | None:
    """S3's multipart ETag: MD5 of the parts' MD5s, `-<count>`. None if a part ETag is no MD5 (SSE-KMS)."""
    try:
        digests = b"".join(bytes.fromhex(etag) for etag in etags)
    except ValueError:
        return None
    if len(digests) != 16 * len(etags):
        return None
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(etags)}"
