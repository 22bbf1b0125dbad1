"""A discrete-event simulation of instances sharing one folder quota, in simulated time.

Each simulated instance drives a real `Pacer` (embedding_pipeline/clients/pacing.py); what is
simulated is everything around it: a server with a sliding one-second window (as the emulator in
devstack/ enforces the quota), the network's latency, the membership objects in the bucket (each
instance writes its estimate every `refresh_s` and reads the others' last writes), and an
interactive caller. The same scenarios run for real, as processes against the emulator, in
bench/shared_quota.py; this one is deterministic, so the tests can assert on it.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from embedding_pipeline.clients.pacing import Estimate, Pacer, Peers

EPOCH = 1_800_000_000.0  # simulated wall-clock time starts here, as time.time() would


@dataclass
class Window:
    """The server's quota: at most `rps` admitted requests in any one-second window."""

    rps: float
    starts: deque[float] = field(default_factory=deque)
    admitted: list[float] = field(default_factory=list)

    def admit(self, now: float) -> bool:
        while self.starts and now - self.starts[0] >= 1.0:
            self.starts.popleft()
        if len(self.starts) >= self.rps:
            return False
        self.starts.append(now)
        self.admitted.append(now)
        return True


@dataclass
class Outcome:
    seconds: float
    chunks: int
    requests: int
    refused: int
    done: list[int]
    interactive_latencies: list[float]
    admitted: list[float]  # times of admitted requests, seconds from the start

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds

    @property
    def refused_share(self) -> float:
        return self.refused / max(self.requests, 1)

    def rate_between(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.admitted) / (end - start)


@dataclass
class _Instance:
    name: str
    pacer: Pacer
    backlog: int
    inflight: int = 0
    done: int = 0
    member: bool = False
    waiting: int = 0  # requests waiting for a slot: the pacer hands out one slot at a time
    ticking: bool = False


def simulate(
    chunks: list[int],
    *,
    quota: float = 10.0,
    configured: float | None = None,
    latency_s: float = 0.05,
    concurrency: int = 32,
    refresh_s: float = 1.0,
    quota_changes: tuple[tuple[float, float], ...] = (),
    interactive_at: tuple[float, ...] = (),
    seed: int = 1,
    horizon_s: float = 600.0,
    sharing: bool = True,
) -> Outcome:
    """Instances with `chunks[i]` chunks each, started together, until all are embedded. Without
    `sharing`, each paces alone on its 429s, as every instance did before quota sharing."""
    rng = random.Random(seed)
    clock = [EPOCH]
    window = Window(quota)
    events: list[tuple[float, int, Callable[[], None]]] = []
    order = itertools.count()
    board: dict[str, Estimate] = {}  # the membership objects: name → last announced estimate
    refused = requests = 0
    latencies: list[float] = []
    finished = [EPOCH]

    def at(when: float, action: Callable[[], None]) -> None:
        heapq.heappush(events, (when, next(order), action))

    instances = [
        _Instance(f"i{index:02d}-{rng.random():.6f}", Pacer(configured or quota, EPOCH), count)
        for index, count in enumerate(chunks)
    ]

    def refresh(instance: _Instance) -> None:
        now = clock[0]
        if instance.member:
            board[instance.name] = instance.pacer.estimate.state
        names = sorted(board)
        if instance.name in names:
            others = tuple(board[name] for name in names if name != instance.name)
            instance.pacer.join(Peers(len(names), others, names.index(instance.name)), now)
        if instance.member:
            # A newcomer looks again soon, for others that joined with it.
            delay = 0.25 if len(names) == 1 and now - EPOCH < refresh_s else refresh_s
            at(now + delay * (0.9 + 0.2 * rng.random()), lambda: refresh(instance))

    def pump(instance: _Instance) -> None:
        while instance.inflight < concurrency and instance.backlog > 0:
            instance.backlog -= 1
            instance.inflight += 1
            send(instance)

    def send(instance: _Instance) -> None:
        instance.waiting += 1
        if not instance.ticking:
            tick(instance)

    def tick(instance: _Instance) -> None:
        """The next slot is taken only when the one before it has come, at the rate of that moment."""
        instance.ticking = True
        slot = instance.pacer.next_slot(clock[0])

        def fire() -> None:
            instance.waiting -= 1
            arrive(instance)
            if instance.waiting:
                tick(instance)
            else:
                instance.ticking = False

        at(slot, fire)

    def arrive(instance: _Instance) -> None:
        nonlocal requests, refused
        requests += 1
        admitted = window.admit(clock[0])
        refused += not admitted
        at(clock[0] + latency_s, lambda: reply(instance, admitted))

    def reply(instance: _Instance, admitted: bool) -> None:
        news = instance.pacer.answered(clock[0], refused=not admitted)
        if not admitted:
            if news is not None and instance.member:
                board[instance.name] = news  # a drop (or a passing 429) is announced at once
            send(instance)
            return
        instance.inflight -= 1
        instance.done += 1
        finished[0] = clock[0]
        if instance.backlog == 0 and instance.inflight == 0:
            instance.member = False
            board.pop(instance.name, None)
        pump(instance)

    def interactive(started: float) -> None:
        nonlocal requests, refused
        requests += 1
        if window.admit(clock[0]):
            at(clock[0] + latency_s, lambda: latencies.append(clock[0] - started))
            return
        refused += 1
        # The HTTP path's retry of a 429: tens of milliseconds, jittered (clients/embeddings.py).
        at(clock[0] + latency_s + 0.03 + 0.06 * rng.random(), lambda: interactive(started))

    for instance in instances:
        instance.member = sharing
        at(EPOCH, functools.partial(refresh, instance))
        at(EPOCH + 0.001, functools.partial(pump, instance))
    for when, rps in quota_changes:
        at(EPOCH + when, functools.partial(setattr, window, "rps", rps))
    for when in interactive_at:
        at(EPOCH + when, functools.partial(interactive, EPOCH + when))

    while events and clock[0] < EPOCH + horizon_s:
        clock[0], _, action = heapq.heappop(events)
        action()
    return Outcome(
        seconds=finished[0] - EPOCH,
        chunks=sum(instance.done for instance in instances),
        requests=requests,
        refused=refused,
        done=[instance.done for instance in instances],
        interactive_latencies=latencies,
        admitted=[t - EPOCH for t in window.admitted],
    )
