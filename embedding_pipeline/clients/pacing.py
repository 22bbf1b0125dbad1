"""Pacing requests so that all instances of the function together use the folder's quota.

The embeddings quota (10 requests per second unless raised) belongs to the folder, and the function
runs as several instances at once. Instances that only react to 429s (AIMD) starve each other: each
429 halves a pace that others then take, and none knows how many share the quota. So pacing here
has two parts, one shared and one learnt:

1. **Who shares the quota** (`Peers`). Instances that embed in bulk announce themselves in the
   bucket (quota_share.py: one small object each, rewritten every second) and read the others'
   announcements. The quota is counted in whole requests per one-second window, so it is split in
   whole requests too: of a capacity of 10 among 3 members, the first (by name) sends 4 a second
   and the others 3, each evenly spaced. A stream of exactly k evenly spaced requests a second
   puts exactly k in every one-second window, so the members' streams add up to the capacity in
   every window, whatever their phases. (Fractional shares, 3.33 each, put 3 or 4 in a window
   depending on where it falls; three such streams bunch into 11 or 12 now and then and draw
   429s.) Instances come and go: an announcement older than a few seconds no longer counts.
   More members than whole requests a second queue in the order they came: the oldest `budget`
   send one a second each, the others wait for their place (a fractional pace each would bunch:
   20 instances of half a request a second all send their first at once). A member that gets a
   place waits PROMOTE_S first, so that the request of the member it replaces has left the window.
   Queued members do not probe above the estimate's level, nor before QUIET_S after they were
   queued: one request a second, or none, says nothing of a quiet quota (a raised quota is found
   once they are fewer than its requests).
   A newcomer may also be held (`Peers.not_before`) until the members already sending have seen
   it (quota_share.py): until then they count without it. One that found no one ramps up from
   RAMP_START of the quota to the whole over RAMP_S (`Peers.ramp_from`): others may have been
   announcing themselves at the same moment.
2. **What the capacity is** (`CapacityEstimate`). EMBEDDINGS_RPS, the folder's quota, is where
   the estimate starts. A 429 says the capacity is lower than the pace (a smaller quota, another
   application in the folder): the estimate gives up one whole request a second, after a short dip
   that lets the window empty. A 429 that comes of members joining (the newcomer was not yet seen)
   only dips. 429s that keep coming past the hold mean the quota itself fell: each drop is then
   the share of the last second's answers refused (half at most). After `QUIET_S` without a 429 it
   probes upward, slowly at first and then faster, so a raised quota is found within seconds.
   Members adopt the estimate of the member refused last, so all share one estimate, one budget
   and one quiet period: one instance's 429 slows them all, and they probe together.

Interactive requests (the HTTP API's) do not announce themselves: they send at once and retry a
429 within tens of milliseconds (clients/embeddings.py). Bulk members leave a little of each second
unused (SPACING); an interactive request takes a free place in the window, and a bulk request it
displaces is refused and sent again.

Nothing here sleeps or reads a clock: the caller passes the time, so the tests drive it with
simulated time (tests/quota_sim.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

DROP = 0.88  # after a drop the pace dips to this share of the new level ...
REGROW_S = 2.0  # ... and climbs back to it over this long
SHAVE = 0.975  # the new level is at most this share of the refused pace (below two a second, too)
DEEPEST_DROP = 0.5  # 429s that keep coming take it down by their share of the last second, half at most
DEEP_SHARE = 0.25  # "keep coming": this share of the last second's answers
# 429s within this long of a drop are echoes of the same overload: the window is 1 s, and the other
# members hear of the drop within a second.
HOLD_S = 2.0
SETTLE_S = 1.5  # 429s this soon after the members changed come of the change, not of the quota
QUIET_S = 8.0  # seconds without a 429 before probing above the level
# Probing raises the estimate by PROBE × (seconds of probing)² of the level: slowly near the level,
# where the quota most likely is, and fast beyond it, so a raised quota is found soon.
PROBE = 0.04
FLOOR_SHARE = 0.02  # never below 2% of the configured quota: a trickle still learns when it lifts
CEILING_SHARE = 20.0  # never above 20 times it: probing must stop somewhere
SPACING = 0.98  # a member's requests go 2% wider apart than its whole rate: room for network jitter
WINDOW_S = 1.0  # the quota is per second: refusals are counted over the last second ...
# A member whose turn came waits this long: with the answer and the leaving of its predecessor, a
# whole window since that one's last request.
PROMOTE_S = 0.9
RECHECK_S = 0.1  # a member waiting for its turn or its hold looks at its share again this often
# A newcomer that found no one starts at this share of its pace and reaches the whole over RAMP_S:
# others that announced themselves at the same moment may have been missed.
RAMP_START = 0.25
RAMP_S = 1.0
EVIDENCE = 8  # ... or over more, up to 3 s, until this many answers say how many were refused
# A member that paused (between two queue batches, say) makes up the slots it left unused, at up to
# this many times its pace, as long as its last window still holds no more than its whole number.
CATCH_UP = 2.0


@dataclass(frozen=True, slots=True)
class Estimate:
    """A capacity estimate's state: enough to tell its value at any time, here or on another member.
    Times are wall-clock seconds (time.time()), comparable between instances."""

    level: float  # what it climbs back to after a drop; probing starts from here
    low: float  # where the last drop left it
    dropped_at: float
    refused_at: float  # the last 429; probing waits QUIET_S after it
    ceiling: float

    def value(self, now: float, quiet_from: float = float("-inf")) -> float:
        """The capacity at `now`; probing waits QUIET_S after the last 429 (and after `quiet_from`)."""
        since_drop = now - self.dropped_at
        if since_drop < REGROW_S:
            return self.low + (self.level - self.low) * max(0.0, since_drop) / REGROW_S
        probing = now - max(self.refused_at, quiet_from) - QUIET_S
        if probing <= 0:
            return self.level
        return min(self.ceiling, self.level * (1 + PROBE * probing * probing))


@dataclass(frozen=True, slots=True)
class Peers:
    """How many instances pace together (this one included), and the others' estimates as they
    last announced them."""

    members: int = 1
    others: tuple[Estimate, ...] = ()
    rank: int = 0  # this instance's place among the members (their names, oldest first, in order)
    not_before: float = float("-inf")  # a newcomer sends nothing before the members have seen it
    ramp_from: float = float("-inf")  # a newcomer that found no one ramps up from this moment


SOLO = Peers()


class CapacityEstimate:
    """The folder's capacity in requests per second, learnt from 429s (see the module docstring)."""

    def __init__(self, quota: float, now: float) -> None:
        if quota <= 0:
            raise ValueError("quota must be positive")
        self._floor = quota * FLOOR_SHARE
        # No drop yet (an hour ago is as good as never), and the quiet period starts now: the
        # configured quota is trusted first.
        self.state = Estimate(quota, quota, now - 3600.0, now, quota * CEILING_SHARE)

    def value(self, now: float) -> float:
        return self.state.value(now)

    def adopt(self, others: tuple[Estimate, ...]) -> None:
        """Take the estimate of the member refused last, if that is later than our own last 429."""
        freshest = max(others, key=lambda other: other.refused_at, default=None)
        if freshest is not None and freshest.refused_at > self.state.refused_at:
            self.state = freshest

    def passing(self, now: float) -> Estimate | None:
        """A 429 of a passing cause (instances joining): the level stays, the quiet period restarts,
        and the pace dips for a moment, once per hold, so that the window empties. Once per hold,
        too, the estimate without the dip is what the others should hear: their quiet restarts."""
        state = self.state
        if now - state.dropped_at < HOLD_S:
            self.state = replace(state, refused_at=now)
            return None
        self.state = replace(state, low=state.level * DROP, dropped_at=now, refused_at=now)
        return replace(state, refused_at=now)

    def refused(self, now: float, share: float) -> bool:
        """A 429 came back, and `share` of the last second's answers were 429s. True if the
        estimate dropped (the other members should hear of it)."""
        state = self.state
        if now - state.dropped_at < HOLD_S:
            self.state = replace(state, refused_at=now)
            return False
        current = state.value(now)
        if now - state.dropped_at < HOLD_S + WINDOW_S and share >= DEEP_SHARE:
            # Many 429s still coming right after the hold: the quota itself is lower. Drop by their share.
            level = current * max(DEEPEST_DROP, min(DROP, 1.0 - share))
        else:
            # The quota is whole requests a second, and this pace exceeded it: one whole request a
            # second less (with half a request in hand, so that small dips keep that budget). Below
            # two a second a whole request is too much to give up: a lone drop then.
            step = math.floor(current) - 0.5 if current >= 2 else current * DROP
            level = min(current * SHAVE, step)
        level = max(self._floor, level)
        # For a moment lower still (REGROW_S), so that the window empties of the excess.
        self.state = replace(
            state, level=level, low=max(self._floor, level * DROP), dropped_at=now, refused_at=now
        )
        return True


class Pacer:
    """Spaces one instance's requests at its part of the estimated capacity."""

    def __init__(self, quota: float, now: float) -> None:
        self.estimate = CapacityEstimate(quota, now)
        self.peers = SOLO
        self._members_changed_at = float("-inf")
        self._last_slot = float("-inf")
        # Its last slots at its present whole number a second (`_paced`), as many as that number.
        self._recent: deque[float] = deque()
        self._recent_whole: int | None = None
        self._promoted_until = float("-inf")
        self._queued_at = float("-inf")  # when it was last seen queued: probing waits QUIET_S after
        self._answers: deque[tuple[float, bool]] = deque()  # (when, refused) over the last second

    def capacity(self, now: float) -> float:
        """The estimate; queued (more members than requests a second), not above its level: a
        member sending one a second, or waiting, hears too few answers to probe on its own quiet."""
        level = self.estimate.state.level
        value = self.estimate.state.value(now, quiet_from=self._queued_at)
        return min(value, level) if self.peers.members > math.floor(level) else value

    def rate(self, now: float) -> float:
        """Requests per second this instance may send now: its whole number of the capacity's
        whole requests per second, spaced a little wider than exactly (see `Peers`)."""
        return self._pace(now)[0]

    def _pace(self, now: float) -> tuple[float, int | None]:
        """The rate, and the whole number a window it stands for when it is exactly that number
        spaced: None while ramping, queued among more members than requests, or under one a second."""
        capacity, members, rank = self.capacity(now), self.peers.members, self.peers.rank
        budget = math.floor(capacity)
        if budget == 0:  # under one request a second: fractions, and some bunching
            return capacity / members, None
        if members > budget:  # more members than requests a second: the oldest go, one a second each
            return (SPACING if rank < budget else 0.0), None
        whole = budget // members + (1 if rank < budget % members else 0)
        ramped = (now - self.peers.ramp_from) / RAMP_S
        if members == 1 and ramped < 1:
            return whole * SPACING * max(RAMP_START, RAMP_START + (1 - RAMP_START) * ramped), None
        return whole * SPACING, whole

    def waiting(self, now: float) -> bool:
        """Whether this instance may send nothing now: held, or waiting for its place."""
        return now < max(self.peers.not_before, self._promoted_until) or self.rate(now) == 0

    def peek(self, now: float) -> float:
        """When this instance's next request may go (waiting for a place: a guess, RECHECK_S on)."""
        return self._peek(now)[0]

    def _peek(self, now: float) -> tuple[float, int | None]:
        rate, whole = self._pace(now)
        if rate == 0:
            return now + RECHECK_S, whole
        return max(now, self.peers.not_before, self._promoted_until, self._paced(rate, whole)), whole

    def _paced(self, rate: float, whole: int | None) -> float:
        """The pace's next slot: 1 / rate after the last, or sooner for a member making up a pause.

        Evenly spaced, k a second puts k in every window; what the quota counts is only that. A
        member that paused may go up to CATCH_UP times faster while its last window (WINDOW_S /
        SPACING, the spacing's room for jitter kept) holds fewer than its k: the members' streams
        still add up to no more than the capacity in any window, and a pause between two
        invocations leaves none of its part of the quota unused. A member that has not yet sent k
        at this k (a newcomer, a changed share or estimate) only spaces."""
        spaced = self._last_slot + 1.0 / rate
        recent = self._recent
        if whole is None or whole != self._recent_whole or len(recent) < whole:
            return spaced
        window_frees = recent[-whole] + WINDOW_S / SPACING
        return max(window_frees, min(spaced, self._last_slot + 1.0 / (rate * CATCH_UP)))

    def next_slot(self, now: float) -> float:
        """When this instance's next request may go, and take that moment (not while `waiting`)."""
        slot, whole = self._peek(now)
        self._last_slot = slot
        recent = self._recent
        if whole != self._recent_whole:
            recent.clear()
            self._recent_whole = whole
        if whole is not None:
            recent.append(slot)
            if len(recent) > whole:
                recent.popleft()
        return slot

    def answered(self, now: float, *, refused: bool) -> Estimate | None:
        """Record an answer; for a 429 the other members should hear of, the estimate to tell them.

        A 429 that drops the estimate is told. So is one of a passing cause (members changing),
        undipped: the 429 may be the excess of another member, probing on its own quiet, that landed
        here, and only the restarted quiet stops it. Where instances come and go all the time (short
        queue batches, one after another) every 429 is "passing": told only when it drops the
        estimate, the probing would never end."""
        answers = self._answers
        answers.append((now, refused))
        while answers and (
            now - answers[0][0] > 3 * WINDOW_S or (len(answers) > EVIDENCE and now - answers[0][0] > WINDOW_S)
        ):
            answers.popleft()
        if not refused:
            return None
        if now - self._members_changed_at < SETTLE_S:
            return self.estimate.passing(now)
        # Too few answers say nothing of a share: then the drop is the lone one.
        share = (
            sum(was_refused for _, was_refused in answers) / len(answers) if len(answers) >= EVIDENCE else 0.0
        )
        if not self.estimate.refused(now, share):
            return None
        answers.clear()  # the next share is of answers to the new pace only
        return self.estimate.state

    def join(self, peers: Peers, now: float) -> None:
        """What the members said at the last look; the freshest estimate among them is adopted."""
        if (peers.members, peers.rank) != (self.peers.members, self.peers.rank):
            self._members_changed_at = now
        was_queued = self.rate(now) == 0
        self.peers = peers
        self.estimate.adopt(peers.others)
        if was_queued and self.rate(now) > 0:
            self._promoted_until = now + PROMOTE_S
        if peers.members > math.floor(self.estimate.state.level):
            self._queued_at = now
