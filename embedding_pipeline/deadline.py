"""How long the current invocation may still work.

The platform kills an invocation at its timeout; the pipeline stops starting work `margin` seconds
earlier so that it can checkpoint what it has and leave cleanly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

_NO_DEADLINE_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Deadline:
    expires_at: float  # time.monotonic() seconds, margin already taken off
    budget_s: float = _NO_DEADLINE_S  # the whole time the invocation had to work, margin taken off

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    @classmethod
    def from_context(cls, context: Any, margin_s: float) -> Deadline:
        """Read `get_remaining_time_in_millis()` when the context has it; otherwise no practical limit."""
        seconds = time_left(context)
        if seconds is None:
            seconds = _NO_DEADLINE_S
        # A short timeout must still leave time to work: the margin takes at most a quarter of it.
        return cls.after(seconds - min(margin_s, seconds / 4))

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def mostly_left(self) -> bool:
        """Whether most of the invocation's time is still ahead: work that runs out of time from
        here would run out in any invocation."""
        return self.remaining() >= 0.8 * self.budget_s

    def expired(self) -> bool:
        return self.remaining() <= 0


def time_left(context: Any) -> float | None:
    """Seconds until the platform ends the invocation (no margin taken off); None if it does not say."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    try:
        return float(remaining()) / 1000.0
    except (TypeError, ValueError):
        return None
