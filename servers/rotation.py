"""Choosing a server: eligibility, the four strategies, priorities and regional fallback.

A Pool is a snapshot of today's eligible servers with their quota, built with one query.
`pick` is O(1) amortised (O(log n) for least-used) so a pick among 1,000 servers stays in
microseconds. The snapshot's counters are only a guide: the authoritative limit is the
conditional UPDATE in servers/quota.py, which every send goes through.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import random
from dataclasses import dataclass, field

from django.db.models import F, Q
from django.utils import timezone

from . import quota
from .daytime import sending_day
from .models import Configuration, RotationStrategy, Server, ServerKind, ServerState


@dataclass(slots=True, eq=False)
class Slot:
    id: int
    name: str
    kind: str
    priority: int
    region: str
    reputation: float
    cap: int
    used: int
    ip_address: str = ""
    server: Server | None = field(default=None, repr=False)

    @property
    def remaining(self) -> int:
        return self.cap - self.used


class _RoundRobin:
    __slots__ = ("slots", "i")

    def __init__(self, slots: list[Slot], start: int = 0):
        self.slots = list(slots)
        self.i = start % len(slots) if slots else 0

    def take(self) -> Slot | None:
        slots = self.slots
        while slots:
            if self.i >= len(slots):
                self.i = 0
            slot = slots[self.i]
            if slot.used >= slot.cap:
                slots.pop(self.i)
                continue
            self.i += 1
            slot.used += 1
            return slot
        return None


class _Random:
    __slots__ = ("slots", "rng")

    def __init__(self, slots: list[Slot], rng: random.Random):
        self.slots = list(slots)
        self.rng = rng

    def take(self) -> Slot | None:
        slots = self.slots
        while slots:
            i = self.rng.randrange(len(slots))
            slot = slots[i]
            if slot.used >= slot.cap:
                slots[i] = slots[-1]
                slots.pop()
                continue
            slot.used += 1
            return slot
        return None


class _LeastUsed:
    """The smallest share of today's cap used; ties go to the earlier server."""

    __slots__ = ("heap", "seq")

    def __init__(self, slots: list[Slot]):
        self.seq = itertools.count()
        self.heap = [(s.used / s.cap if s.cap else 1.0, next(self.seq), s) for s in slots]
        heapq.heapify(self.heap)

    def take(self) -> Slot | None:
        heap = self.heap
        while heap:
            _, _, slot = heap[0]
            if slot.used >= slot.cap:
                heapq.heappop(heap)
                continue
            slot.used += 1
            heapq.heapreplace(heap, (slot.used / slot.cap, next(self.seq), slot))
            return slot
        return None


class _BestPerformance:
    """Highest reputation first; round-robin among servers that tie."""

    __slots__ = ("tiers",)

    def __init__(self, slots: list[Slot], start: int = 0):
        ordered = sorted(slots, key=lambda s: -round(s.reputation, 1))
        self.tiers = [
            _RoundRobin(list(group), start)
            for _, group in itertools.groupby(ordered, key=lambda s: round(s.reputation, 1))
        ]
        self.tiers.reverse()  # best tier at the end, so an exhausted tier pops in O(1)

    def take(self) -> Slot | None:
        while self.tiers:
            slot = self.tiers[-1].take()
            if slot is not None:
                return slot
            self.tiers.pop()
        return None


def _picker(strategy: str, slots: list[Slot], rng: random.Random, start: int):
    if strategy == RotationStrategy.RANDOM:
        return _Random(slots, rng)
    if strategy == RotationStrategy.LEAST_USED:
        return _LeastUsed(slots)
    if strategy == RotationStrategy.BEST_PERFORMANCE:
        return _BestPerformance(slots, start)
    return _RoundRobin(slots, start)


class Pool:
    """Eligible servers grouped by (priority, region), one picker per group."""

    def __init__(
        self,
        slots: list[Slot],
        *,
        strategy: str = RotationStrategy.ROUND_ROBIN,
        strict_routing: bool = False,
        rng: random.Random | None = None,
        start: int = 0,
    ):
        """`start` is where the cycles begin: snapshots taken one after another must not all
        begin with the same server, or one pick per snapshot (a single send) is never rotated."""
        self.strategy = strategy
        self.strict_routing = strict_routing
        self.slots = {s.id: s for s in slots}
        rng = rng or random.Random()
        groups: dict[tuple[int, str], list[Slot]] = {}
        for slot in slots:
            if slot.cap > 0:
                groups.setdefault((slot.priority, slot.region), []).append(slot)
        self.priorities = sorted({p for p, _ in groups})
        self.pickers = {key: _picker(strategy, group, rng, start) for key, group in groups.items()}
        self._regions_by_priority = {p: [r for (q, r) in groups if q == p] for p in self.priorities}
        self._spread = itertools.count(start)

    def __len__(self) -> int:
        return len(self.slots)

    def exclude(self, slot_id: int) -> None:
        """Take a server out of this snapshot (failover): it looks exhausted from now on."""
        slot = self.slots.get(slot_id)
        if slot is not None:
            slot.cap = slot.used

    def pick(self, region: str = "") -> Slot | None:
        """The next server for a recipient in `region` ("" when no routing rule matched)."""
        for priority in self.priorities:
            slot = self._pick_in(priority, region)
            if slot is not None:
                return slot
        return None

    def _pick_in(self, priority: int, region: str) -> Slot | None:
        pickers = self.pickers
        if region:
            # The region's own servers, then servers without a region, then (unless strict) the others.
            for key in ((priority, region), (priority, "")):
                picker = pickers.get(key)
                if picker is not None:
                    slot = picker.take()
                    if slot is not None:
                        return slot
            if self.strict_routing:
                return None
            others = [r for r in self._regions_by_priority[priority] if r not in (region, "")]
        else:
            others = self._regions_by_priority[priority]
        if not others:
            return None
        # Spread regionless mail (or fallback mail) over the groups in turn.
        start = next(self._spread)
        for k in range(len(others)):
            picker = pickers[(priority, others[(start + k) % len(others)])]
            slot = picker.take()
            if slot is not None:
                return slot
        return None


def eligible_servers(*, now: dt.datetime | None = None) -> list[Server]:
    """Enabled (in the active pool), active, configured and not marked suspect."""
    now = now or timezone.now()
    configured = (Q(kind=ServerKind.SMTP) & ~Q(host="")) | (Q(kind=ServerKind.SENDGRID) & ~Q(api_key=""))
    return list(
        Server.objects.filter(configured, in_pool=True, state=ServerState.ACTIVE)
        .filter(Q(suspect_until__isnull=True) | Q(suspect_until__lte=now))
        .select_related("warmup_schedule")
    )


def load_pool(
    *, config: Configuration | None = None, day: dt.date | None = None, rng: random.Random | None = None
) -> Pool:
    day = day or sending_day()
    if config is None:
        config = Configuration.objects.filter(is_active=True).first()
    start = advance_cursor(config) if config else 0
    servers = eligible_servers()
    rows = quota.ensure_rows(servers, day)
    slots = [
        Slot(
            id=s.pk,
            name=s.name,
            kind=s.kind,
            priority=s.priority,
            region=s.region if (config and config.routing_rules) else "",
            reputation=s.reputation,
            cap=rows[s.pk].cap,
            used=rows[s.pk].used,
            ip_address=s.ip_address or "",
            server=s,
        )
        for s in servers
        if s.pk in rows
    ]
    return Pool(
        slots,
        strategy=config.rotation_strategy if config else RotationStrategy.ROUND_ROBIN,
        strict_routing=config.strict_routing if config else False,
        rng=rng,
        start=start,
    )


def advance_cursor(config: Configuration) -> int:
    """Move the shared round-robin cursor one step; every worker's next snapshot starts further on.

    Returns the new position. A caller that takes its start from the cursor first (the
    dispatcher, which advances only after a run that claimed something) gets the same cycle."""
    if config.rotation_strategy not in (RotationStrategy.ROUND_ROBIN, RotationStrategy.BEST_PERFORMANCE):
        return 0
    Configuration.objects.filter(pk=config.pk).update(rr_cursor=F("rr_cursor") + 1)
    return Configuration.objects.filter(pk=config.pk).values_list("rr_cursor", flat=True).first() or 0
