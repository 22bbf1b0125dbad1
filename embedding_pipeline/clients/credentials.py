"""Where the IAM token comes from, in order: the invocation context, YC_IAM_TOKEN, the metadata service.

The context's token is read on every invocation (it is refreshed by the platform and lives at most
12 hours); the metadata service is rate limited, so its token is cached until shortly before expiry.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.errors import CredentialsError
from embedding_pipeline.logs import register_secret
from embedding_pipeline.settings import Settings

_REFRESH_BEFORE_EXPIRY_S = 300.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """What one invocation authenticates with. repr never shows the values."""

    iam_token: str | None
    api_key: str | None
    access_key_id: str | None
    secret_access_key: str | None

    def __repr__(self) -> str:
        present = [name for name in ("iam_token", "api_key", "access_key_id") if getattr(self, name)]
        return f"Credentials(present={present})"

    def embeddings_authorization(self) -> str:
        if self.api_key:
            return f"Api-Key {self.api_key}"
        if self.iam_token:
            return f"Bearer {self.iam_token}"
        raise CredentialsError(
            "no IAM token or API key for the embeddings API: give the function a service account, "
            "or set YC_API_KEY or YC_IAM_TOKEN (yc iam create-token)"
        )

    def monitoring_authorization(self) -> str | None:
        """The IAM token first: an API key made for the embeddings API may lack Monitoring's scope."""
        if self.iam_token:
            return f"Bearer {self.iam_token}"
        if self.api_key:
            return f"Api-Key {self.api_key}"
        return None


def token_from_context(context: Any) -> str | None:
    """`context.token` holds `access_token` when the function has a service account; else absent or None."""
    token = getattr(context, "token", None)
    if isinstance(token, Mapping):
        value = token.get("access_token")
        return value if isinstance(value, str) and value else None
    return None


@dataclass(slots=True)
class _CachedToken:
    value: str
    expires_at: float


class CredentialsProvider:
    """Built once per instance; `resolve` is called once per invocation."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient, *, metadata_service: bool = True) -> None:
        self._settings = settings
        self._http = http
        # Off outside the cloud (the command-line tool): there is no metadata service to ask there.
        self._metadata_service = metadata_service
        self._metadata_token: _CachedToken | None = None

    async def resolve(self, context: Any) -> Credentials:
        settings = self._settings
        api_key = settings.yc_api_key.get_secret_value() if settings.yc_api_key else None
        access_key_id = settings.aws_access_key_id.get_secret_value() if settings.aws_access_key_id else None
        secret_key = (
            settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
        )
        token = token_from_context(context)
        if token is None and settings.yc_iam_token is not None:
            token = settings.yc_iam_token.get_secret_value()
        needs_token = api_key is None or access_key_id is None
        if token is None and needs_token and self._metadata_service:
            token = await self._token_from_metadata()
        for secret in (token, api_key, access_key_id, secret_key):
            register_secret(secret)
        return Credentials(token, api_key, access_key_id, secret_key)

    async def _token_from_metadata(self) -> str:
        cached = self._metadata_token
        if cached is not None and cached.expires_at - time.monotonic() > _REFRESH_BEFORE_EXPIRY_S:
            return cached.value
        try:
            response = await self._http.get(
                self._settings.yc_metadata_url,
                headers={"Metadata-Flavor": "Google"},
                timeout=httpx.Timeout(2.0),
            )
        except HTTPX_ERRORS as exc:
            raise CredentialsError(
                "no IAM token: the context has none, YC_IAM_TOKEN is unset and the metadata service "
                f"is unreachable ({type(exc).__name__}); give the function a service account"
            ) from None
        if response.status_code != 200:
            raise CredentialsError(f"metadata service answered {response.status_code} for the IAM token")
        try:
            payload = response.json()
            value = str(payload["access_token"])
            expires_in = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise CredentialsError("metadata service answered without an access_token") from None
        self._metadata_token = _CachedToken(value, time.monotonic() + expires_in)
        return value
