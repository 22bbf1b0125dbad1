"""What an instance builds once (HTTP pools, the rate limiter, clients) and opens per invocation.

Cloud Functions reuses a warm instance for many invocations, one at a time. Connection pools and the
rate limiter must outlive each invocation (to keep connections warm and the pace steady), while
credentials and the deadline belong to one invocation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from embedding_pipeline.bucket_policy import default_bucket
from embedding_pipeline.clients.auth import bearer_auth, no_credentials, sigv4_auth
from embedding_pipeline.clients.credentials import Credentials, CredentialsProvider
from embedding_pipeline.clients.embeddings import EmbeddingsClient
from embedding_pipeline.clients.message_queue import MessageQueue, sqs_auth
from embedding_pipeline.clients.monitoring import MonitoringWriter
from embedding_pipeline.clients.ocr import OcrClient
from embedding_pipeline.clients.output_marks import OutputMarks
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.server_clock import ServerClock
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.deadline import Deadline
from embedding_pipeline.embedder import Embedder
from embedding_pipeline.errors import CredentialsError
from embedding_pipeline.invocation import Invocation
from embedding_pipeline.logs import get_logger
from embedding_pipeline.metrics import InvocationMetrics, Trigger
from embedding_pipeline.ocr.reader import OcrReader
from embedding_pipeline.settings import Settings

if TYPE_CHECKING:
    from embedding_pipeline.quota_share import KeptPlace, QuotaShare
    from embedding_pipeline.vector_index.postgres import VectorIndex

_POOL_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=60)


@dataclass(frozen=True, slots=True)
class Transports:
    """Injectable transports, so tests can fake one service and keep the other real."""

    embeddings: httpx.AsyncBaseTransport | None = None
    storage: httpx.AsyncBaseTransport | None = None
    metadata: httpx.AsyncBaseTransport | None = None
    queue: httpx.AsyncBaseTransport | None = None
    metrics: httpx.AsyncBaseTransport | None = None  # Yandex Monitoring's write API
    ocr: httpx.AsyncBaseTransport | None = None  # Yandex Vision OCR


log = get_logger()


class Runtime:
    def __init__(
        self, settings: Settings, transports: Transports | None = None, *, metadata_service: bool = True
    ) -> None:
        transports = transports or Transports()
        self.settings = settings
        self.instance = uuid.uuid4().hex[:16]  # names this instance among those sharing the quota
        # Its place among them, kept between invocations, in each bucket they meet in.
        self.kept_places: dict[str, KeptPlace] = {}
        self.server_clock = ServerClock()  # what times in the bucket's shared state are read against
        _say_where_the_quota_is_shared(settings)
        # One TLS context for every client: loading the CA bundle costs ~20 ms of cold start each time.
        tls = httpx.create_ssl_context()
        self._embeddings_http = httpx.AsyncClient(
            transport=transports.embeddings, limits=_POOL_LIMITS, verify=tls
        )
        self._storage_http = httpx.AsyncClient(
            transport=transports.storage,
            limits=_POOL_LIMITS,
            timeout=httpx.Timeout(30.0, connect=5.0),
            verify=tls,
        )
        self._metadata_http = httpx.AsyncClient(transport=transports.metadata, verify=tls)
        self._queue_http = httpx.AsyncClient(transport=transports.queue, verify=tls)
        self._ocr_http = httpx.AsyncClient(transport=transports.ocr, limits=_POOL_LIMITS, verify=tls)
        self.ocr = _ocr_client(settings, self._ocr_http)
        self.kept_ocr_places: dict[str, KeptPlace] = {}
        self.embeddings = EmbeddingsClient(
            self._embeddings_http,
            base_url=settings.embeddings_url,
            dimensions=settings.embeddings_dimensions,
            limiter=RateLimiter(settings.embeddings_rps),
            concurrency=settings.embeddings_concurrency,
            max_attempts=settings.embeddings_max_attempts,
            timeout_s=settings.embeddings_timeout_s,
            data_logging=settings.yc_data_logging,
        )
        self.credentials = CredentialsProvider(
            settings, self._metadata_http, metadata_service=metadata_service
        )
        self._vector_index: VectorIndex | None = None
        self.monitoring = MonitoringWriter(settings, transports.metrics, tls)

    @property
    def vector_index(self) -> VectorIndex | None:
        """The vector index when VECTOR_DB_DSN is set: one connection pool for the instance's life,
        opened by the first query (asyncpg is imported then, not at cold start)."""
        if self._vector_index is None and self.settings.vector_db_dsn is not None:
            from embedding_pipeline.vector_index.opening import open_vector_index  # noqa: PLC0415

            self._vector_index = open_vector_index(self.settings, self._storage_http)
        return self._vector_index

    async def open_invocation(self, context: Any, trigger: Trigger = "unknown") -> Invocation:
        credentials = await self.credentials.resolve(context)
        deployment = deployment_of(self.settings, context)
        storage = self.storage_for(credentials, deployment)
        deadline = Deadline.from_context(context, self.settings.deadline_margin_s)
        return Invocation(
            settings=self.settings,
            storage=storage,
            embedder=Embedder(
                self.embeddings,
                credentials,
                deadline,
                quota_share=_quota_share(self, storage),
                meet_in=default_bucket(self.settings),
            ),
            deadline=deadline,
            queue=self.queue_for(credentials),
            vector_index=self.vector_index,
            request_id=str(getattr(context, "request_id", None) or "local"),
            deployment=deployment,
            credentials=credentials,
            metrics=InvocationMetrics(trigger),
            ocr=_ocr_reader(self, storage, deadline, credentials, context),
        )

    @asynccontextmanager
    async def invocation(self, context: Any, trigger: Trigger) -> AsyncIterator[Invocation]:
        """Open this invocation's clients; however it ends, log its summary line and write its
        counters to Monitoring. `trigger`: the kind of event that started it (handlers/)."""
        started = time.monotonic()
        invocation = await self.open_invocation(context, trigger)
        try:
            yield invocation
        finally:
            await invocation.embedder.close()
            if invocation.ocr is not None:
                await invocation.ocr.close()
            _log_summary(invocation, started)
            invocation.metrics.add_usage(invocation.embedder.usage)
            if invocation.ocr is not None:
                invocation.metrics.add_ocr_usage(invocation.ocr.usage)
            await self.monitoring.write(
                invocation.metrics, invocation.credentials, deployment=invocation.deployment, context=context
            )

    def queue_for(self, credentials: Credentials) -> MessageQueue | None:
        if not self.settings.queue_url:
            return None
        auth = sqs_auth(
            credentials.access_key_id,
            credentials.secret_access_key,
            credentials.iam_token,
            self.settings.ymq_region,
        )
        return MessageQueue(self._queue_http, self.settings.ymq_endpoint, self.settings.queue_url, auth)

    def storage_for(self, credentials: Credentials, deployment: str = "local") -> ObjectStorage:
        use_keys = self.settings.s3_use_access_keys or not credentials.iam_token
        if use_keys and credentials.access_key_id and credentials.secret_access_key:
            auth = sigv4_auth(
                credentials.access_key_id, credentials.secret_access_key, self.settings.s3_region
            )
        elif credentials.iam_token:
            auth = bearer_auth(credentials.iam_token)
        else:  # raised by the first request: an invocation that reads no object needs no keys
            auth = no_credentials(CredentialsError("no IAM token or access keys for Object Storage"))
        return ObjectStorage(
            self._storage_http,
            self.settings.s3_endpoint,
            auth,
            server_clock=self.server_clock,
            marks=OutputMarks(self.settings.output_prefix, deployment),
        )

    async def aclose(self) -> None:
        if self._vector_index is not None:
            await self._vector_index.aclose()
        await self.monitoring.aclose()
        clients = (
            self._embeddings_http,
            self._storage_http,
            self._metadata_http,
            self._queue_http,
            self._ocr_http,
        )
        for client in clients:
            await client.aclose()

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


def _ocr_client(settings: Settings, http: httpx.AsyncClient) -> OcrClient:
    return OcrClient(
        http,
        url=settings.ocr_url,
        operations_url=settings.ocr_operations_url,
        limiter=RateLimiter(settings.ocr_rps),
        data_logging=settings.yc_data_logging,
    )


def _ocr_reader(
    runtime: Runtime, storage: ObjectStorage, deadline: Deadline, credentials: Credentials, context: Any
) -> OcrReader:
    """The invocation's way to Vision OCR, with its credentials (those of the embeddings API: the
    same IAM token or API key) and folder."""
    settings = runtime.settings
    return OcrReader(
        runtime.ocr,
        storage,
        settings,
        deadline,
        credentials.embeddings_authorization,
        settings.yc_folder_id or getattr(context, "function_folder_id", None),
        _quota_share(runtime, storage, ocr=True),
    )


def _log_summary(invocation: Invocation, started: float) -> None:
    """The invocation's summary line: what it wrote, what it asked of the embeddings API, how long."""
    usage, totals = invocation.embedder.usage, invocation.totals
    log.info(
        "invocation_done",
        documents=totals.documents,
        chunks=totals.chunks,
        reused_chunks=totals.reused,
        api_requests=usage.requests,
        tokens=usage.tokens,
        throttled=usage.throttled,
        retries=usage.retries,
        ocr_pages=invocation.ocr.usage.pages if invocation.ocr is not None else 0,
        duration_ms=round((time.monotonic() - started) * 1000),
    )


def deployment_of(settings: Settings, context: Any) -> str:
    """Which deployment this invocation belongs to: DEPLOYMENT_NAME, else the function's name."""
    name = settings.deployment_name or getattr(context, "function_name", None)
    return str(name) if name else "local"


def _say_where_the_quota_is_shared(settings: Settings) -> None:
    """Said once, at cold start, when sharing works but not everywhere (embedder.py)."""
    if settings.quota_sharing and default_bucket(settings) is None:
        log.info(
            "quota_sharing_meets_in_event_buckets",
            reason="no SOURCE_BUCKET or OUTPUT_BUCKET: instances share the quota in the bucket of the "
            "document they embed; an HTTP request that names no bucket embeds alone",
        )


def _quota_share(
    runtime: Runtime, storage: ObjectStorage, *, ocr: bool = False
) -> Callable[[str], QuotaShare] | None:
    """How to make an invocation's membership among the instances sharing the quota, in the output
    area of the bucket they meet in (the default bucket, else the bucket of the work: embedder.py);
    None when sharing is off. Made on the first bulk request only: the HTTP API's cold start does
    not import it. The membership outlives the invocation in `runtime.kept_places`. `ocr`: among
    those sharing Vision OCR's quota instead, on a board of its own."""
    settings = runtime.settings
    if not settings.quota_sharing:
        return None

    def make(bucket: str) -> QuotaShare:
        from embedding_pipeline.outputs.layout import OutputLayout  # noqa: PLC0415
        from embedding_pipeline.outputs.names import OCR_QUOTA, QUOTA  # noqa: PLC0415
        from embedding_pipeline.quota_share import KeptPlace, QuotaShare  # noqa: PLC0415

        if ocr:
            board, limiter, places = QUOTA + OCR_QUOTA, runtime.ocr.limiter, runtime.kept_ocr_places
        else:
            board, limiter, places = QUOTA, runtime.embeddings.limiter, runtime.kept_places
        return QuotaShare(
            storage,
            OutputLayout(bucket, settings.output_prefix, quota_board=board),
            limiter,
            instance=runtime.instance,
            kept=places.setdefault(bucket, KeptPlace()),
        )

    return make
