"""How requests to Yandex's S3-compatible services are authenticated: an IAM token or a SigV4 signature."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class _BearerAuth(httpx.Auth):
    """Yandex's IAM-token form: `Authorization: Bearer <token>`, no signature."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def bearer_auth(token: str) -> httpx.Auth:
    return _BearerAuth(token)


class _NoCredentials(httpx.Auth):
    """Stands in where no credentials were found: the first request says so, and none is sent."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise self._error


def no_credentials(error: Exception) -> httpx.Auth:
    """An auth that raises `error` on use: a client that is never used then needs no credentials."""
    return _NoCredentials(error)


def sigv4_auth(access_key_id: str, secret_access_key: str, region: str, service: str = "s3") -> httpx.Auth:
    """AWS Signature Version 4 with static access keys; `service` is "s3" or "sqs"."""
    # Imported here: only deployments with static keys sign, and the import costs cold-start time.
    from httpx_auth import AWS4Auth  # noqa: PLC0415

    auth: httpx.Auth = AWS4Auth(
        access_id=access_key_id, secret_key=secret_access_key, region=region, service=service
    )
    return auth
