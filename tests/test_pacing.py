"""Pacing of a shared quota, in simulated time: the estimate's rules one by one, then whole scenarios
of instances sharing a folder-wide limit (tests/quota_sim.py), with the issue's targets.

The same scenarios run for real, as processes against the emulator, in bench/shared_quota.py.
"""

from __future__ import annotations

import itertools
import statistics

import pytest

from embedding_pipeline.clients.pacing import (
    CATCH_UP,
    CEILING_SHARE,
    DEEPEST_DROP,
    DROP,
    FLOOR_SHARE,
    HOLD_S,
    PROMOTE_S,
    QUIET_S,
    REGROW_S,
    SETTLE_S,
    SPACING,
    WINDOW_S,
    CapacityEstimate,
    Pacer,
    Peers,
)
from tests.quota_sim import simulate

T0 = 1_800_000_000.0


def test_the_configured_quota_is_trusted_until_a_429() -> None:
    estimate = CapacityEstimate(10, T0)
    assert estimate.value(T0) == 10
    assert estimate.value(T0 + QUIET_S) == 10  # no probing before a quiet period has passed


def test_a_429_takes_one_whole_request_a_second_off_and_dips_below_for_a_moment() -> None:
    estimate = CapacityEstimate(10, T0)
    assert estimate.refused(T0 + 1, share=0.05)
    level = 9.5  # budget 9, with half a request in hand
    assert estimate.value(T0 + 1) == pytest.approx(level * DROP)
    assert estimate.value(T0 + 1 + REGROW_S / 2) == pytest.approx(level * (DROP + 1) / 2)
    assert estimate.value(T0 + 1 + REGROW_S) == pytest.approx(level)
    assert estimate.value(T0 + 1 + QUIET_S) == pytest.approx(level)  # holds there until quiet


def test_a_refusal_while_probing_keeps_the_budget_below_the_refused_one() -> None:
    estimate = CapacityEstimate(10, T0)
    probing = T0 + QUIET_S + 2.5  # 10 × (1 + PROBE × 2.5²) = 12.5: a budget of 12 was refused
    assert estimate.refused(probing, share=0.05)
    assert estimate.state.level == pytest.approx(11.5)


def test_a_quota_under_two_a_second_is_not_cut_by_whole_requests() -> None:
    estimate = CapacityEstimate(2, T0)
    estimate.refused(T0, share=0.05)
    assert estimate.state.level == pytest.approx(1.5)
    estimate = CapacityEstimate(1.5, T0)
    estimate.refused(T0, share=0.05)
    assert estimate.state.level == pytest.approx(1.5 * DROP)


def test_429s_right_after_a_drop_are_echoes_of_the_same_overload() -> None:
    estimate = CapacityEstimate(10, T0)
    estimate.refused(T0, share=0.05)
    assert not estimate.refused(T0 + HOLD_S / 2, share=0.9)
    assert estimate.state.level == pytest.approx(9.5)
    # ... but the echo restarts the quiet period: no probing QUIET_S after the first 429.
    assert estimate.value(T0 + QUIET_S + 0.5) == pytest.approx(9.5)


def test_429s_that_keep_coming_drop_by_their_share() -> None:
    """The quota itself fell: one request a second at a time would take many seconds to get there."""
    estimate = CapacityEstimate(20, T0)
    estimate.refused(T0, share=0.7)  # a first 429: one request a second off, whatever the share
    assert estimate.state.level == pytest.approx(19.5)
    later = T0 + HOLD_S + 0.1
    before = estimate.value(later)
    assert estimate.refused(later, share=0.7)
    assert estimate.state.level == pytest.approx(before * DEEPEST_DROP)
    assert estimate.value(later) == pytest.approx(before * DEEPEST_DROP * DROP)


def test_a_few_429s_after_the_hold_take_only_one_request_off() -> None:
    estimate = CapacityEstimate(20, T0)
    estimate.refused(T0, share=0.1)
    later = T0 + HOLD_S + 0.1
    estimate.refused(later, share=0.1)  # below DEEP_SHARE: not the quota falling, a last straggler
    assert estimate.state.level == pytest.approx(18.5)


def test_a_quiet_quota_is_probed_slowly_then_faster() -> None:
    estimate = CapacityEstimate(10, T0)
    steps = [estimate.value(T0 + QUIET_S + seconds) for seconds in (1, 2, 3, 4, 5)]
    rises = [b - a for a, b in zip([10.0, *steps], steps, strict=False)]
    assert all(b > a > 0 for a, b in itertools.pairwise(rises))
    assert steps[-1] >= 19  # a doubled quota is reached within QUIET_S + 5 s
    assert estimate.value(T0 + 3600) == 10 * CEILING_SHARE  # but not without end


def test_the_estimate_never_falls_below_its_floor() -> None:
    estimate = CapacityEstimate(10, T0)
    for step in range(40):  # 429s that keep coming just after each hold: each drops by half
        estimate.refused(T0 + (HOLD_S + 0.5) * step, share=1.0)
    assert estimate.state.level == pytest.approx(10 * FLOOR_SHARE)


def test_members_adopt_the_estimate_of_the_member_refused_last() -> None:
    mine = CapacityEstimate(10, T0)
    theirs = CapacityEstimate(10, T0)
    theirs.refused(T0 + 2, share=0.05)
    mine.adopt((theirs.state,))
    assert mine.state == theirs.state
    mine.refused(T0 + 5, share=0.05)
    newer = mine.state
    mine.adopt((theirs.state,))  # older news changes nothing
    assert mine.state == newer


def test_members_split_the_capacity_in_whole_requests_a_second() -> None:
    rates = []
    for rank in range(3):
        pacer = Pacer(10, T0)
        pacer.join(Peers(members=3, rank=rank), T0)
        rates.append(pacer.rate(T0))
    assert rates == pytest.approx([4 * SPACING, 3 * SPACING, 3 * SPACING])
    slots = [pacer.next_slot(T0) for _ in range(4)]
    assert [b - a for a, b in itertools.pairwise(slots)] == pytest.approx([1 / (3 * SPACING)] * 3)


def test_more_members_than_requests_a_second_queue_oldest_first() -> None:
    """Twelve members of ten requests a second: the oldest ten send one a second, two wait."""
    rates = []
    for rank in range(12):
        pacer = Pacer(10, T0)
        pacer.join(Peers(members=12, rank=rank), T0)
        rates.append(pacer.rate(T0))
    assert rates == pytest.approx([SPACING] * 10 + [0.0, 0.0])
    assert pacer.waiting(T0)


def test_a_member_whose_turn_comes_waits_for_its_predecessors_request_to_leave_the_window() -> None:
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=12, rank=11), T0)
    assert pacer.waiting(T0)
    pacer.join(Peers(members=10, rank=9), T0 + 3)  # two left: its turn
    assert pacer.waiting(T0 + 3 + PROMOTE_S - 0.01)
    assert not pacer.waiting(T0 + 3 + PROMOTE_S)
    assert pacer.next_slot(T0 + 3) == pytest.approx(T0 + 3 + PROMOTE_S)


def test_a_held_newcomer_sends_nothing_before_its_hold_ends() -> None:
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=2, rank=1, not_before=T0 + 1.2), T0)
    assert pacer.waiting(T0 + 1.19)
    assert pacer.next_slot(T0) == pytest.approx(T0 + 1.2)
    assert pacer.rate(T0) == pytest.approx(5 * SPACING)


def test_429s_just_after_the_members_changed_leave_the_level_alone() -> None:
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=2), T0)
    refused_at = T0 + SETTLE_S / 2  # the newcomer's first second
    told = pacer.answered(refused_at, refused=True)
    assert pacer.estimate.state.level == 10
    assert pacer.capacity(refused_at) == pytest.approx(10 * DROP)  # a dip, to empty the window
    # The others hear that the quiet restarted, at the level, without the dip.
    assert told is not None
    assert (told.level, told.refused_at) == (10, refused_at)
    assert told.value(refused_at) == 10
    assert pacer.answered(refused_at + 0.3, refused=True) is None  # an echo: told once a hold
    later = refused_at + HOLD_S + 0.1
    told = pacer.answered(later, refused=True)  # settled: now a 429 is news of the quota
    assert told is not None
    assert told.level == pytest.approx(9.5) == pacer.estimate.state.level


def test_a_passing_429_stops_a_member_probing_above_the_quota_on_its_own_quiet() -> None:
    """Where instances come and go all the time (short queue batches), every 429 comes within
    SETTLE_S of a change. The excess of a member that probes on its own quiet lands on the others;
    unless they say so it probes on, and draws 429s all run long (18% of the 10 rps backfill)."""
    prober, victim = Pacer(10, T0), Pacer(10, T0)
    now = T0 + QUIET_S + 3
    assert prober.capacity(now) > 11  # quiet since it started: probing, its budget past the quota
    victim.join(Peers(members=3, rank=2), now - 0.5)  # a member just came or went
    told = victim.answered(now, refused=True)
    assert told is not None
    prober.join(Peers(members=3, rank=0, others=(told,)), now + 0.5)
    assert prober.capacity(now + 0.5) == 10  # its quiet restarted at the victim's 429: no probing
    assert prober.capacity(now + QUIET_S - 0.1) == 10  # and the quiet counts from that 429


# Whole scenarios: instances of 10 rps shared, 50 ms latency, a sliding one-second window.


@pytest.mark.parametrize(
    ("instances", "chunks", "least_chunks_per_s", "most_refused"),
    [(1, 600, 9.5, 0.03), (3, 200, 9.0, 0.05), (6, 100, 9.0, 0.08)],
)
def test_instances_together_use_most_of_the_quota_with_few_429s(
    instances: int, chunks: int, least_chunks_per_s: float, most_refused: float
) -> None:
    for seed in (1, 2, 3):
        outcome = simulate([chunks] * instances, seed=seed)
        assert outcome.done == [chunks] * instances
        assert outcome.chunks_per_s >= least_chunks_per_s, (seed, outcome.chunks_per_s)
        assert outcome.refused_share <= most_refused, (seed, outcome.refused_share)


def test_without_sharing_instances_that_share_a_quota_collide() -> None:
    """The comparison: the same three instances, each pacing alone at the quota, as before."""
    alone = simulate([200] * 3, sharing=False)
    shared = simulate([200] * 3)
    assert alone.refused_share > 2 * shared.refused_share


def test_an_interactive_request_gets_through_while_three_instances_ingest() -> None:
    outcome = simulate([400] * 3, interactive_at=tuple(5 + 1.5 * n for n in range(20)))
    latencies = sorted(outcome.interactive_latencies)
    assert len(latencies) == 20
    assert latencies[18] <= 1.0  # p95 of 20
    assert statistics.median(latencies) < 0.2


def test_the_pace_follows_a_raised_then_lowered_quota() -> None:
    outcome = simulate([500] * 3, quota_changes=((20, 20), (50, 5)))
    assert outcome.done == [500] * 3  # nothing failed on the way
    up = next(t for t in range(20, 60) if outcome.rate_between(t, t + 2) >= 16)
    assert up + 2 - 20 <= 12
    assert outcome.rate_between(56, 70) >= 4.0  # down to the new quota, and using it


def test_queued_members_do_not_probe_above_the_level() -> None:
    """One request a second, or none while waiting, is no evidence of a quiet quota."""
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=12, rank=3), T0 + QUIET_S)
    assert pacer.capacity(T0 + QUIET_S + 5) == 10
    pacer.join(Peers(members=4, rank=3), T0 + QUIET_S + 5)  # fewer now: no longer queued
    # The quiet counts from the last look that found it queued, not from its last 429.
    assert pacer.capacity(T0 + 2 * QUIET_S - 0.5) == 10
    assert pacer.capacity(T0 + 2 * QUIET_S + 3) > 10


def test_a_member_that_paused_catches_up_but_never_sends_more_than_its_whole_number_in_a_window() -> None:
    """Between two queue batches an instance sends nothing; evenly spaced, that part of its share
    went unused. It makes the slots up at up to CATCH_UP times its pace, within its window."""
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=2), T0)  # 5 a second
    interval = 1 / (5 * SPACING)
    first = [pacer.next_slot(T0) for _ in range(5)]  # a fresh share only spaces
    assert [b - a for a, b in itertools.pairwise(first)] == pytest.approx([interval] * 4)
    resumed = first[-1] + 0.6  # a pause, then ten requests ready at once
    slots = [pacer.next_slot(resumed) for _ in range(10)]
    assert slots[0] == pytest.approx(resumed)
    assert slots[1] - slots[0] == pytest.approx(interval / CATCH_UP)  # making up the pause
    sent = first + slots
    window = WINDOW_S / SPACING
    for at in sent:  # whatever window one looks at, five at most
        assert sum(at <= other < at + window - 1e-9 for other in sent) <= 5
    # Over the pause and the ten, the share is used in full: ten more within two windows of the first.
    assert slots[-1] - first[-1] <= 2 * window + 1e-9


def test_a_member_without_a_full_window_at_its_share_only_spaces() -> None:
    pacer = Pacer(10, T0)
    pacer.join(Peers(members=2), T0)
    pacer.next_slot(T0)
    pacer.next_slot(T0)
    pacer.join(Peers(members=3, rank=2), T0 + 5)  # a new share: 3 a second, nothing sent at it yet
    assert pacer.next_slot(T0 + 5) == pytest.approx(T0 + 5)
    assert pacer.next_slot(T0 + 5) == pytest.approx(T0 + 5 + 1 / (3 * SPACING))
