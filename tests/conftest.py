"""Shared fixtures. Test tiers: unit (no network), functional (handlers and clients against a real
SeaweedFS on loopback, the embeddings API faked with respx or an httpx MockTransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.s3server import S3Server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import Settings
from tests.fakes import FakeEmbeddingsAPI
from tests.support import settings_for

pytest_plugins = ["tests.seaweed", "tests.secret_scan", "pytester"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the developer's shell; os.environ is restored after each test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    configure_logging("DEBUG")
    yield
    configure_logging()


@pytest.fixture
def api() -> FakeEmbeddingsAPI:
    return FakeEmbeddingsAPI()


@pytest.fixture
async def runtime(s3_server: S3Server, api: FakeEmbeddingsAPI) -> AsyncIterator[Runtime]:
    """A function instance pointed at SeaweedFS and the fake embeddings API."""
    runtime = Runtime(settings_for(s3_server), Transports(embeddings=api.transport))
    yield runtime
    await runtime.aclose()
