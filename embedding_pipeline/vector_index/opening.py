"""The instance's vector index, made from the settings when VECTOR_DB_DSN is set, and the TLS its
connections use when VECTOR_DB_CA_URL is set: Yandex's Internal Root CA, read from the file the
Cloud Functions runtime ships (VECTOR_DB_CA_FILE), or, where that is absent, fetched once per
instance from VECTOR_DB_CA_URL over verified HTTPS.

Nothing here is imported by an instance without an index, nor before its first use: asyncpg costs
cold-start time.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.errors import VectorIndexError
from embedding_pipeline.settings import Settings

if TYPE_CHECKING:
    from embedding_pipeline.vector_index.postgres import VectorIndex

# The CA could not be fetched, or what came is no certificate.
_CA_FAILURES: tuple[type[Exception], ...] = (*HTTPX_ERRORS, ssl.SSLError, ValueError)


def open_vector_index(settings: Settings, http: httpx.AsyncClient) -> VectorIndex | None:
    """The index VECTOR_DB_DSN names, its pool not yet opened (the first query opens it); None
    when no index is configured."""
    if settings.vector_db_dsn is None:
        return None
    from embedding_pipeline.vector_index.postgres import VectorIndex  # noqa: PLC0415

    password = settings.vector_db_password
    ca = (
        None
        if settings.vector_db_ca_url is None
        else DatabaseCa(settings.vector_db_ca_file, settings.vector_db_ca_url, http)
    )
    return VectorIndex(
        settings.vector_db_dsn.get_secret_value(),
        password=None if password is None else password.get_secret_value(),
        table=settings.vector_db_table,
        dimensions=settings.embeddings_dimensions,
        tls=None if ca is None else ca.context,
    )


class DatabaseCa:
    """TLS that trusts only the database's CA (the file, else what `url` serves) and checks the
    server's name against its certificate."""

    def __init__(self, path: str, url: str, http: httpx.AsyncClient) -> None:
        self._path = Path(path)
        self._url = url
        self._http = http
        self._context: ssl.SSLContext | None = None

    async def context(self) -> ssl.SSLContext:
        if self._context is None and self._path.is_file():
            try:
                self._context = ssl.create_default_context(cafile=str(self._path))
            except (OSError, ssl.SSLError) as exc:
                raise VectorIndexError(
                    f"VECTOR_DB_CA_FILE {self._path}: {type(exc).__name__}: {exc}"
                ) from None
        if self._context is None:
            try:
                response = await self._http.get(self._url, timeout=10.0)
                response.raise_for_status()
                context = ssl.create_default_context(cadata=response.text)
            except _CA_FAILURES as exc:
                raise VectorIndexError(f"VECTOR_DB_CA_URL {self._url}: {type(exc).__name__}: {exc}") from None
            self._context = context
        return self._context
