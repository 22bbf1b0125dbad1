"""Shared fixtures. Test tiers: unit (no network), functional (handlers and clients against a real
SeaweedFS on loopback, the embeddings API faked with respx or an httpx MockTransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from devstack.s3server import S3Server
from embedding_pipeline.logs import configure_logging
from embedding_pipeline.runtime import Runtime, Transports
from embedding_pipeline.settings import Settings
from tests.fakes import FakeEmbeddingsAPI
from tests.support import RuntimeFactory, settings_for

pytest_plugins = ["tests.seaweed", "tests.postgres", "tests.secret_scan", "pytester"]


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
async def make_runtime(s3_server: S3Server, api: FakeEmbeddingsAPI) -> AsyncIterator[RuntimeFactory]:
    """Builds function instances pointed at SeaweedFS: `settings_for` with the given overrides, and the
    fake embeddings API unless `transports` says otherwise. Each is closed after the test, passed or
    failed, so a failing assertion never leaves open clients behind."""
    async with AsyncExitStack() as built:

        def make(*, transports: Transports | None = None, **setting_overrides: Any) -> Runtime:
            runtime = Runtime(
                settings_for(s3_server, **setting_overrides),
                Transports(embeddings=api.transport) if transports is None else transports,
            )
            built.push_async_callback(runtime.aclose)
            return runtime

        yield make


@pytest.fixture
def runtime(make_runtime: RuntimeFactory) -> Runtime:
    """A function instance pointed at SeaweedFS and the fake embeddings API."""
    return make_runtime()
