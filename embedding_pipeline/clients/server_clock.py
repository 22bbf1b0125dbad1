"""The storage server's clock as this instance sees it: what shared state in the bucket is timed by.

Instances meet in the bucket (the sweep's lease, the quota's announcements and estimate), and each
writes times that the others read. A clock that runs an hour ahead must not hold a lease for an
hour, nor pin the others' estimate, nor see every announcement as stale. So those times are written
and judged in the server's time, which every instance observes the same way: each answer of Object
Storage carries a `Date` header (whole seconds). A request sent at local time `s` and answered at
`r` with `Date: D` says the server's clock minus ours lies in [D - r, D + 1 - s]; the intersection
over all answers narrows as requests straddle the server's second boundaries.

Instances whose clocks are synchronised (NTP) agree far better than one second, and an offset
estimated from whole-second headers is no better than that: the local clock is trusted unless the
observed interval excludes it by more than TRUST_S, which a skew of seconds does at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

TRUST_S = 1.0  # the local clock stands unless it is observed to be off by more than this


class ServerClock:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._low = float("-inf")  # the server's clock minus ours is at least this
        self._high = float("inf")  # ... and at most this

    def observe(self, date_header: str | None, sent_at: float, received_at: float) -> None:
        """An answer of the server, sent and received at these local times (`clock()`)."""
        server = _seconds(date_header)
        if server is None:
            return
        low, high = server - received_at, server + 1.0 - sent_at
        if low > self._high or high < self._low:
            self._low, self._high = low, high  # the clocks moved (a step of NTP): start over
        else:
            self._low, self._high = max(self._low, low), min(self._high, high)

    @property
    def offset(self) -> float:
        """Seconds to add to the local clock to read the server's: 0 while it is trusted."""
        if self._low - TRUST_S > 0 or self._high + TRUST_S < 0:
            return (self._low + self._high) / 2
        return 0.0

    def now(self) -> float:
        """The server's time, as epoch seconds."""
        return self._clock() + self.offset

    def local(self) -> float:
        """The local clock this one observes with (what `observe`'s times are read from)."""
        return self._clock()


def _seconds(date_header: str | None) -> float | None:
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
