"""What the function reads back from its own areas of the bucket (the quota's board, sweeps' states,
claims, checkpoints, manifests) may not be its own: anyone with write access to the bucket, another
version, a half-written object, a clock far off. Such an object decides nothing: it is ignored, and
said once per instance at WARN, naming the key and why (not once per read: a sweep reads thousands).
"""

from __future__ import annotations

import math

from embedding_pipeline.logs import get_logger

log = get_logger()

_SAID: set[tuple[str, str]] = set()
_SAID_AT_MOST = 10_000  # a bucket full of foreign objects must not grow this without end


def ignored(key: str, reason: str) -> None:
    """An object the function ignores, said once."""
    if (key, reason) in _SAID:
        return
    if len(_SAID) < _SAID_AT_MOST:
        _SAID.add((key, reason))
    log.warning("foreign_object_ignored", key=key, reason=reason)


def finite(*values: float) -> bool:
    return all(isinstance(value, int | float) and math.isfinite(value) for value in values)
