"""One invocation's way to Yandex Vision OCR: its client, credentials, deadline, and its part of
OCR's quota among the instances reading now. Made for every invocation (runtime.py), so it imports
nothing of document parsing: reading.py does the work, when a document has pages to read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from embedding_pipeline.clients.ocr import OcrCall, OcrClient, OcrUsage
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.settings import Settings

if TYPE_CHECKING:
    from embedding_pipeline.quota_share import QuotaShare


@dataclass(frozen=True, slots=True)
class OcrTally:
    """What Vision OCR cost one version of a document, across invocations (the manifest's usage),
    and, for a dry run, the pages it would still send."""

    pages: int = 0  # pages sent for recognition: what Vision bills
    requests: int = 0
    to_recognise: int = 0  # a dry run only


NO_OCR = OcrTally()


@dataclass(slots=True)
class OcrReader:
    """One invocation's way to Vision OCR (runtime.py makes it)."""

    client: OcrClient
    storage: ObjectStorage
    settings: Settings
    deadline: Deadline
    authorization: Callable[[], str]  # raises CredentialsError when there is none
    folder_id: str | None
    # Makes this invocation's membership among the instances sharing OCR's quota, in a bucket
    # (quota_share.py); None: this instance paces alone.
    quota_share: Callable[[str], QuotaShare] | None = None
    usage: OcrUsage = field(default_factory=OcrUsage)
    _share: QuotaShare | None = None

    async def join_quota(self, bucket: str) -> None:
        """Before the first request: take a part of OCR's quota among the instances reading now."""
        if self.quota_share is None:
            return
        if self._share is None:
            self._share = self.quota_share(bucket)
        await self._share.join()

    async def close(self) -> None:
        """The invocation ends: its instance no longer takes a part of OCR's quota."""
        if self._share is not None:
            await self._share.leave()

    def call(self) -> OcrCall:
        settings = self.settings
        return OcrCall(
            authorization=self.authorization(),
            folder_id=self.folder_id,
            model=settings.ocr_model,
            languages=settings.ocr_language_codes,
            deadline=self.deadline,
            usage=self.usage,
        )
