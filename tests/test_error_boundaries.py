"""Unit: no httpx exception leaves an HTTP client unmapped (no network).

Every exception class httpx exports is raised by a client's transport, and the client must raise its
own error (a PipelineError) instead: the embeddings client, Object Storage, Message Queue and the
metadata service's IAM token. A class a later httpx adds outside clients/http_failures.py's
HTTPX_ERRORS fails here rather than escaping a client in production.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import httpx
import pytest

from embedding_pipeline.clients.auth import bearer_auth
from embedding_pipeline.clients.credentials import CredentialsProvider
from embedding_pipeline.clients.embeddings import EmbeddingsClient, EmbeddingsUsage
from embedding_pipeline.clients.http_failures import HTTPX_ERRORS
from embedding_pipeline.clients.message_queue import MessageQueue, QueueError, sqs_auth
from embedding_pipeline.clients.ratelimit import RateLimiter
from embedding_pipeline.clients.storage import ObjectStorage
from embedding_pipeline.errors import (
    CredentialsError,
    EmbeddingsError,
    OutOfTime,
    PipelineError,
    StorageError,
)
from embedding_pipeline.settings import load_settings
from tests.support import context

REQUEST = httpx.Request("GET", "https://example.invalid/")


def httpx_exception_classes() -> list[type[Exception]]:
    exported = (getattr(httpx, name) for name in httpx.__all__)
    return [kind for kind in exported if isinstance(kind, type) and issubclass(kind, Exception)]


def instance(kind: type[Exception]) -> Exception:
    """One of `kind`, built with what its constructor asks for: a message, a request, a response."""
    parameters = inspect.signature(kind).parameters
    arguments: dict[str, object] = {
        "request": REQUEST,
        "response": httpx.Response(500, request=REQUEST),
    }
    keywords = {name: value for name, value in arguments.items() if name in parameters}
    if "message" in parameters:
        return kind(f"{kind.__name__} raised by the transport", **keywords)
    return kind(**keywords)  # the stream errors say what went wrong in their own words


EXCEPTIONS = [instance(kind) for kind in httpx_exception_classes()]


def raising(exc: Exception) -> httpx.AsyncClient:
    """A client whose every request fails with `exc`, as a real transport's could."""

    def handler(_request: httpx.Request) -> httpx.Response:
        raise exc

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def no_sleep(_seconds: float) -> None:
    return None


def test_the_exceptions_cover_all_of_httpx() -> None:
    assert len(EXCEPTIONS) >= 28  # httpx 0.28 exports 28; fewer means the enumeration broke
    unmapped = [type(exc).__name__ for exc in EXCEPTIONS if not isinstance(exc, HTTPX_ERRORS)]
    assert unmapped == []


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda exc: type(exc).__name__)
async def test_the_embeddings_client_maps_every_httpx_exception(exc: Exception) -> None:
    client = EmbeddingsClient(
        raising(exc),
        base_url="https://ai.api.cloud.yandex.net/v1",
        dimensions=256,
        limiter=RateLimiter(1000),
        concurrency=1,
        max_attempts=2,
        timeout_s=5,
        sleep=no_sleep,
    )
    with pytest.raises(PipelineError) as raised:
        await client.embed(
            "text",
            model="emb://b1g/text-search-doc/latest",
            authorization="Api-Key k",
            usage=EmbeddingsUsage(),
        )
    assert isinstance(raised.value, EmbeddingsError | OutOfTime)


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda exc: type(exc).__name__)
async def test_object_storage_maps_every_httpx_exception(exc: Exception) -> None:
    storage = ObjectStorage(raising(exc), "https://storage.yandexcloud.net", bearer_auth("t"), max_attempts=1)
    with pytest.raises(PipelineError) as raised:
        await storage.head("bucket", "key.md")
    assert isinstance(raised.value, StorageError)


def broken_body(exc: Exception) -> httpx.AsyncClient:
    """A 200 whose body breaks off with `exc` after its first line."""

    class BreaksOff(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"first line\n"
            raise exc

    def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=BreaksOff())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda exc: type(exc).__name__)
async def test_object_storage_maps_every_httpx_exception_in_a_streamed_body(exc: Exception) -> None:
    storage = ObjectStorage(broken_body(exc), "https://storage.yandexcloud.net", bearer_auth("t"))
    with pytest.raises(PipelineError) as raised:
        async for _line in storage.iter_lines("bucket", "lines.jsonl"):
            pass
    assert isinstance(raised.value, StorageError)


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda exc: type(exc).__name__)
async def test_message_queue_maps_every_httpx_exception(exc: Exception) -> None:
    endpoint = "https://message-queue.api.cloud.yandex.net"
    queue = MessageQueue(raising(exc), endpoint, f"{endpoint}/b1g/dj6/jobs", sqs_auth(None, None, "t1.token"))
    with pytest.raises(PipelineError) as raised:
        await queue.send("{}")
    assert isinstance(raised.value, QueueError)


@pytest.mark.parametrize("exc", EXCEPTIONS, ids=lambda exc: type(exc).__name__)
async def test_the_metadata_token_fetch_maps_every_httpx_exception(exc: Exception) -> None:
    provider = CredentialsProvider(load_settings(yc_folder_id="b1g"), raising(exc))
    with pytest.raises(PipelineError) as raised:
        await provider.resolve(context(token=None))  # no token in the context: the metadata service
    assert isinstance(raised.value, CredentialsError)
