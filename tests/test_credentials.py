"""Unit: the IAM token comes from the context, the environment, or the metadata service (cached);
clients without credentials fail when used, not when built."""

from __future__ import annotations

import httpx
import pytest

from embedding_pipeline.clients.credentials import CredentialsProvider, token_from_context
from embedding_pipeline.errors import CredentialsError
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import load_settings
from tests.fakes import FakeEmbeddingsAPI
from tests.support import context


class Metadata:
    """A MockTransport handler standing in for 169.254.169.254, counting calls."""

    def __init__(self, status: int = 200) -> None:
        self.calls = 0
        self.status = status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        assert request.headers["Metadata-Flavor"] == "Google"
        return httpx.Response(self.status, json={"access_token": "t1.from-metadata", "expires_in": 3600})


def provider(metadata: Metadata, **settings: object) -> CredentialsProvider:
    http = httpx.AsyncClient(transport=httpx.MockTransport(metadata))
    return CredentialsProvider(load_settings(yc_folder_id="b1g", **settings), http)


@pytest.mark.parametrize("token", [None, {}, {"access_token": ""}, "not-a-dict"])
def test_context_without_a_usable_token(token: object) -> None:
    assert token_from_context(context(token=token)) is None


def test_context_object_without_a_token_attribute() -> None:
    assert token_from_context(object()) is None


async def test_context_token_wins_and_is_read_every_invocation() -> None:
    metadata = Metadata()
    source = provider(metadata, yc_iam_token="t1.from-env")
    first = await source.resolve(context(token={"access_token": "t1.first"}))
    second = await source.resolve(context(token={"access_token": "t1.second"}))
    assert (first.iam_token, second.iam_token) == ("t1.first", "t1.second")
    assert first.embeddings_authorization() == "Bearer t1.first"
    assert metadata.calls == 0


async def test_environment_token_when_the_context_has_none() -> None:
    credentials = await provider(Metadata(), yc_iam_token="t1.from-env").resolve(context(token=None))
    assert credentials.iam_token == "t1.from-env"


async def test_metadata_service_is_asked_once_and_cached() -> None:
    metadata = Metadata()
    source = provider(metadata)
    for _ in range(3):
        credentials = await source.resolve(context(token=None))
        assert credentials.iam_token == "t1.from-metadata"
    assert metadata.calls == 1


async def test_metadata_failure_is_a_clear_credentials_error() -> None:
    with pytest.raises(CredentialsError, match="metadata service answered 404"):
        await provider(Metadata(status=404)).resolve(context(token=None))


async def test_api_key_is_preferred_for_embeddings_and_hidden_in_repr() -> None:
    credentials = await provider(Metadata(), yc_api_key="AQVNkey-secret").resolve(context())
    assert credentials.embeddings_authorization() == "Api-Key AQVNkey-secret"
    assert "AQVNkey-secret" not in repr(credentials)
    assert "t1.context" not in repr(credentials)


async def test_static_keys_and_api_key_need_no_token() -> None:
    metadata = Metadata(status=500)
    credentials = await provider(
        metadata, yc_api_key="AQVNk", aws_access_key_id="id", aws_secret_access_key="secret"
    ).resolve(context(token=None))
    assert credentials.iam_token is None
    assert metadata.calls == 0


async def test_outside_the_cloud_the_metadata_service_is_never_asked() -> None:
    metadata = Metadata()
    async with httpx.AsyncClient(transport=httpx.MockTransport(metadata)) as http:
        source = CredentialsProvider(load_settings(yc_folder_id="f"), http, metadata_service=False)
        credentials = await source.resolve(context(token=None))
    assert (credentials.iam_token, metadata.calls) == (None, 0)
    with pytest.raises(CredentialsError, match="set YC_API_KEY or YC_IAM_TOKEN"):
        credentials.embeddings_authorization()


async def test_a_client_without_credentials_fails_only_when_used() -> None:
    """An invocation that needs only the embeddings API (an API key) needs no storage keys: its
    storage client is built, and says what is missing when a request is made."""
    api = FakeEmbeddingsAPI()
    settings = load_settings(
        yc_folder_id="f", yc_api_key="AQVNonly-an-api-key", s3_endpoint="http://127.0.0.1:9"
    )
    async with Runtime(settings, Transports(embeddings=api.transport), metadata_service=False) as runtime:
        invocation = await runtime.open_invocation(context(token=None))
        embedding = await invocation.embedder.embed_text("hello", "emb://f/text-search-doc/latest")
        with pytest.raises(CredentialsError, match="no IAM token or access keys for Object Storage"):
            await invocation.storage.head("bucket", "key")
    assert len(embedding.vector) == 256
    assert api.authorizations == {"Api-Key AQVNonly-an-api-key"}


@pytest.mark.parametrize(
    ("use_keys", "expected"), [(True, "AWS4-HMAC-SHA256"), (False, "Bearer t1.context-token")]
)
async def test_storage_signs_with_keys_or_the_iam_token_as_configured(use_keys: bool, expected: str) -> None:
    """In the cloud the keys are the queue sender's (ymq.writer only): S3_USE_ACCESS_KEYS=false makes
    storage requests carry the function's IAM token instead."""
    seen: list[str] = []

    def storage(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(404, stream=httpx.ByteStream(b""))

    settings = load_settings(
        yc_folder_id="f",
        aws_access_key_id="AKIDqueue",
        aws_secret_access_key="queue-secret",
        s3_use_access_keys=use_keys,
        s3_endpoint="http://127.0.0.1:9",
    )
    transports = Transports(storage=httpx.MockTransport(storage))
    async with Runtime(settings, transports, metadata_service=False) as runtime:
        invocation = await runtime.open_invocation(context())
        assert await invocation.storage.head("bucket", "key") is None
    assert len(seen) == 1
    assert seen[0].startswith(expected)
