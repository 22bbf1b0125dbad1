"""Shared fixtures. Test tiers: unit (no network), functional (handlers and clients against a real
SeaweedFS on loopback, the embeddings API faked with respx or an httpx MockTransport)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from embedding_pipeline.logs import configure_logging
from embedding_pipeline.settings import Settings

pytest_plugins = ["tests.seaweed"]


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No setting leaks in from the developer's shell; os.environ is restored after each test."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    configure_logging("DEBUG")
    yield
    configure_logging()
