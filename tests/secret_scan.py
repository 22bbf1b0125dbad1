"""A pytest plugin: fail any test whose captured output (stdout, stderr, logs) shows a secret.

Every credential the suite hands to the code under test is listed here; the function, the local
stack and the benchmarks log to stdout, so a leak anywhere in the suite surfaces as a failed test.
Parts of values are listed where the whole value could be masked by shape while a fragment leaks.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

SUITE_SECRETS = {
    "IAM token in the invocation context": "context-token-secret-value",
    "IAM token of the index tests": "Zqkj5Wdk5KZx5CdlM2Rlp6Zlu3rnpWajJqTm5yNx8uWz56Yzc6emJTl8",
    "IAM token of the embeddings tests": "iam-token-that-must-never-leak",
    "AI Studio API key": "test-api-key-for-fake-server",
    "S3 secret key": "local-admin-secret",
    "S3 read-only secret key": "local-reader-secret",
    "PostgreSQL password of the index": "pgvector-local-secret",
    "PostgreSQL superuser password": "postgres-local-secret",
    "HTTP API key 1": "test-key-1",
    "HTTP API key 2": "test-key-2",
}


def leaked_secrets(text: str) -> list[str]:
    return [name for name, value in SUITE_SECRETS.items() if value in text]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    # Sections accumulate over setup, call and teardown: scan each phase's own once.
    this_phase = [content for title, content in report.sections if title.endswith(f" {report.when}")]
    leaked = leaked_secrets("".join(this_phase))
    if leaked and not report.failed:
        report.outcome = "failed"
        report.longrepr = f"secrets reached the captured output during {report.when}: {', '.join(leaked)}"
