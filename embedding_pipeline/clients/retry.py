"""How long to wait before trying a failed request again: the one backoff every client uses."""

from __future__ import annotations

import random


def backoff_delay(retry: int, *, base: float, cap: float, jitter: float | None = None) -> float:
    """Seconds before retry number `retry` (1-based): doubling from `base`, capped at `cap`.

    The wait is drawn from the upper half of that step (`jitter` in [0, 1), random by default), so
    clients that failed together do not retry together, and no retry comes sooner than half its step.
    """
    ceiling = min(cap, base * 2.0 ** (retry - 1))
    draw = random.random() if jitter is None else jitter  # noqa: S311 - jitter, not security
    return ceiling / 2 * (1 + draw)
