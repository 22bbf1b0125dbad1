"""What Yandex's Python runtime passes to a handler as `context`, for every local caller.

The local stack, `embedpipe invoke`, the benchmarks and the tests all hand the function this one
shape: attributes and the remaining-time method the platform documents (see
../shared/reference/yandex-cloud.md). Locally there is no service account, so no token unless given.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LocalContext:
    timeout_s: float = 600.0
    token: dict[str, Any] | None = None  # {"access_token", "expires_in", "token_type"} with a service account
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "embedding-pipeline-local"
    function_version: str = "local"
    function_folder_id: str = "local"
    memory_limit_in_mb: int = 512
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline_ms(self) -> int:
        return int((time.time() + self.timeout_s - (time.monotonic() - self.started)) * 1000)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_s - (time.monotonic() - self.started)) * 1000)


def iam_token_context(token: str | None, *, timeout_s: float = 600.0) -> LocalContext:
    """A context carrying `token` as the platform carries a service account's IAM token."""
    carried = {"access_token": token, "expires_in": 43200, "token_type": "Bearer"} if token else None
    return LocalContext(timeout_s=timeout_s, token=carried)
