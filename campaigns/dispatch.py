"""The dispatcher: claims due messages per eligible server and hands them to send-batch tasks.

One run at a time, wherever it is started (beat, a kick after a campaign start, the
`dispatch` command): the run first wins the DispatchLock row with a conditional UPDATE on
`expires_at`, so a second dispatcher simply skips, and a crashed one's lock lapses.

A run:
1. reclaims expired leases: messages in `sending` whose worker died go back to `queued`
   (no attempt was counted for them, so none is lost or counted twice);
2. marks running campaigns with nothing left to send as done;
3. works out, per eligible server, what it may take now: the smaller of its remaining
   quota and its pacing allowance over a short horizon, less what it already has in flight;
4. shares the due messages among those servers with the configured rotation strategy
   (servers/rotation.Pool: regions, strict routing, priorities), priority-2 servers only
   getting mail that no priority-1 server can take today;
5. reserves the quota, claims the messages with a conditional UPDATE (status, server,
   lease), and enqueues send-batch tasks after commit.

Everything is a handful of bulk queries per run, whatever the queue length.

The lease expiry doubles as the claim token: every message claimed in a run carries the
same `lease_expires_at`, and a send-batch task only touches rows that still carry the
token it was given, so a task that arrives after its lease was reclaimed does nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import random
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from servers import quota, stats
from servers.configuration import active_configuration
from servers.daytime import day_start, sending_day
from servers.models import RotationStrategy, Server
from servers.rotation import Pool, Slot, advance_cursor, eligible_servers

from .models import Campaign, DeliveryEvent, DispatchLock, Message, MessageStatus

log = logging.getLogger(__name__)

LOCK_NAME = "dispatch"
PENDING = (MessageStatus.QUEUED, MessageStatus.DEFERRED)
UNFINISHED = (MessageStatus.QUEUED, MessageStatus.DEFERRED, MessageStatus.SENDING)
# IN lists stay well under SQLite's bound-parameter limit.
CHUNK = 900


def _setting(name: str, default: int | float) -> int | float:
    return settings.MAILOPS.get(name, default)


def batch_size() -> int:
    return int(_setting("BATCH_SIZE", 200))


def lease_seconds() -> float:
    return float(_setting("LEASE_SECONDS", 600))


def horizon_seconds() -> float:
    """How far ahead a paced server is given work: 60 s at a 2 s delay is 30 messages in flight."""
    return float(_setting("DISPATCH_HORIZON_SECONDS", 60))


def max_in_flight() -> int:
    """Claimed-but-unsent messages per server; keeps an unpaced server's queue short so pause bites fast."""
    return int(_setting("DISPATCH_MAX_IN_FLIGHT", 4 * batch_size()))


def lock_seconds() -> float:
    return float(_setting("DISPATCH_LOCK_SECONDS", 30))


@dataclass(slots=True)
class DispatchReport:
    ran: bool = False
    reclaimed: int = 0
    finished_campaigns: list[int] = field(default_factory=list)
    claimed: dict[int, int] = field(default_factory=dict)
    batches: int = 0

    @property
    def total_claimed(self) -> int:
        return sum(self.claimed.values())


# --- single flight --------------------------------------------------------------------------


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:100]


def acquire_lock(holder: str, *, now: dt.datetime | None = None, seconds: float | None = None) -> bool:
    """Win the dispatcher's run, or learn that another dispatcher holds it."""
    now = now or timezone.now()
    if not DispatchLock.objects.filter(name=LOCK_NAME).exists():
        try:
            with transaction.atomic():
                DispatchLock.objects.create(name=LOCK_NAME, holder="", expires_at=now - dt.timedelta(seconds=1))
        except IntegrityError:
            pass  # created by a concurrent dispatcher a moment ago
    until = now + dt.timedelta(seconds=seconds if seconds is not None else lock_seconds())
    return bool(
        DispatchLock.objects.filter(name=LOCK_NAME, expires_at__lte=now).update(holder=holder, expires_at=until)
    )


def release_lock(holder: str) -> None:
    DispatchLock.objects.filter(name=LOCK_NAME, holder=holder).update(expires_at=timezone.now())


def run_once(*, now: dt.datetime | None = None, rng: random.Random | None = None) -> DispatchReport:
    """One dispatcher run; returns what it did (ran=False when another dispatcher holds the lock)."""
    holder = _holder()
    if not acquire_lock(holder, now=now):
        return DispatchReport()
    try:
        report = DispatchReport(ran=True)
        now = now or timezone.now()
        report.reclaimed = reclaim_expired_leases(now=now)
        report.finished_campaigns = finish_campaigns(now=now)
        claims = claim_due(now=now, rng=rng)
        report.claimed = {server_id: len(ids) for server_id, ids in claims.items()}
        report.batches = sum(-(-len(ids) // batch_size()) for ids in claims.values())
        return report
    finally:
        release_lock(holder)


def run_loop(
    *, interval: float = 2.0, max_runs: int | None = None, should_stop: Callable[[], bool] | None = None
) -> int:
    """Dispatch every `interval` seconds (the `dispatch --loop` command); returns the number of runs."""
    runs = 0
    while max_runs is None or runs < max_runs:
        started = time.monotonic()
        try:
            report = run_once()
            if report.ran and (report.total_claimed or report.reclaimed or report.finished_campaigns):
                log.info(
                    "dispatch: claimed %s in %s batches, reclaimed %s, finished campaigns %s",
                    report.claimed, report.batches, report.reclaimed, report.finished_campaigns,
                )
        except Exception:  # noqa: BLE001 — a loop that dies on one bad run stops all sending
            log.exception("dispatch run failed; retrying in %ss", interval)
        finally:
            # Like a request's end: drop a broken or expired connection (never a caller's transaction).
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
        runs += 1
        if should_stop is not None and should_stop():
            break
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    return runs


# --- housekeeping ---------------------------------------------------------------------------


def reclaim_expired_leases(*, now: dt.datetime | None = None) -> int:
    """Deal with messages whose worker died; returns how many were put back in the queue.

    Whoever sent it, a batch or a single send, marked a message `sent_at` before handing it
    to the server (campaigns/sender.py). A message never handed over (`sent_at` empty)
    goes back to `queued` and out again; no attempt was counted for it, so none is lost
    or counted twice. A message that was handed over but whose outcome was never
    recorded may have been delivered: it becomes `unknown`, counted and shown, and is
    never resent (invariant 3). A live but slow worker extends its leases
    (campaigns/outcomes.extend_lease) long before they run out.
    """
    now = now or timezone.now()
    expired = Q(status=MessageStatus.SENDING, lease_expires_at__lt=now)
    # A read first: on SQLite a transaction takes the write lock even when it changes nothing.
    if not Message.objects.filter(expired).exists():
        return 0
    with transaction.atomic():
        handed_over = list(
            Message.objects.filter(expired, sent_at__isnull=False).values_list("pk", "campaign_id", "server_id")
        )
        if handed_over:
            _mark_unknown(handed_over, now=now)
        return Message.objects.filter(expired, sent_at__isnull=True).update(
            status=MessageStatus.QUEUED, server=None, lease_expires_at=None
        )


UNKNOWN_TEXT = "worker stopped after handing the message to the server and before its reply was recorded"


def _mark_unknown(rows: list[tuple[int, int | None, int | None]], *, now: dt.datetime) -> None:
    per_campaign: dict[int, int] = defaultdict(int)
    per_server: dict[int, int] = defaultdict(int)
    changed_ids: list[int] = []
    for chunk in _chunks([pk for pk, _, _ in rows]):
        changed_ids += list(
            Message.objects.filter(pk__in=chunk, status=MessageStatus.SENDING).values_list("pk", flat=True)
        )
        Message.objects.filter(pk__in=chunk, status=MessageStatus.SENDING).update(
            status=MessageStatus.UNKNOWN, lease_expires_at=None, reply_text=UNKNOWN_TEXT
        )
    changed = set(changed_ids)
    events = []
    for pk, campaign_id, server_id in rows:
        if pk not in changed:
            continue
        if campaign_id:
            per_campaign[campaign_id] += 1
        if server_id:
            per_server[server_id] += 1
        events.append(
            DeliveryEvent(message_id=pk, server_id=server_id, kind=DeliveryEvent.Kind.UNKNOWN, created_at=now,
                          text=UNKNOWN_TEXT, source="mailops")
        )
    DeliveryEvent.objects.bulk_create(events, batch_size=500)
    for campaign_id, n in per_campaign.items():
        Campaign.objects.filter(pk=campaign_id).update(unknown=F("unknown") + n)
    for server_id, n in per_server.items():
        stats.record(server_id, {"unknown": n}, day=sending_day(now))


def finish_campaigns(*, now: dt.datetime | None = None) -> list[int]:
    """Running campaigns with nothing queued, deferred or sending are done."""
    now = now or timezone.now()
    finished = []
    for campaign_id in Campaign.objects.filter(status=Campaign.Status.RUNNING).values_list("pk", flat=True):
        if Message.objects.filter(campaign_id=campaign_id, status__in=UNFINISHED).exists():
            continue
        if Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.RUNNING).update(
            status=Campaign.Status.DONE, finished_at=now
        ):
            finished.append(campaign_id)
    # A message deferred by a batch that was already on the wire when its campaign was cancelled.
    recent = list(
        Campaign.objects.filter(
            status=Campaign.Status.CANCELLED, finished_at__gte=now - dt.timedelta(days=1)
        ).values_list("pk", flat=True)
    )
    if recent and Message.objects.filter(campaign_id__in=recent, status__in=PENDING).exists():
        Message.objects.filter(campaign_id__in=recent, status__in=PENDING).update(
            status=MessageStatus.CANCELLED, lease_expires_at=None, reply_text="campaign cancelled"
        )
    return finished


# --- claiming -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Source:
    """Where due messages come from: a running campaign, or single sends (campaign_id None)."""

    campaign_id: int | None
    new_budget: int | None  # campaign daily_max still free today; None when unlimited


def _sources(now: dt.datetime, day: dt.date) -> list[_Source]:
    sources = [_Source(campaign_id=None, new_budget=None)]
    running = Campaign.objects.filter(status=Campaign.Status.RUNNING).filter(
        Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now)
    )
    since = day_start(day)
    for campaign_id, daily_max in running.order_by("started_at", "pk").values_list("pk", "daily_max"):
        budget = None
        if daily_max is not None:
            # daily_max counts recipients first tried today; retries of older messages are free.
            started = Message.objects.filter(campaign_id=campaign_id, first_attempt_at__gte=since).count()
            in_flight = Message.objects.filter(
                campaign_id=campaign_id, status=MessageStatus.SENDING, first_attempt_at__isnull=True
            ).count()
            budget = max(0, daily_max - started - in_flight)
        sources.append(_Source(campaign_id=campaign_id, new_budget=budget))
    return sources


def _due(source: _Source, *, now: dt.datetime, limit: int, regions: set[str] | None) -> list[tuple[int, str]]:
    """Up to `limit` due messages of one source as (id, region), soonest due first, locked on PostgreSQL."""
    if limit <= 0:
        return []
    qs = Message.objects.filter(status__in=PENDING, next_attempt_at__lte=now)
    qs = qs.filter(campaign__isnull=True) if source.campaign_id is None else qs.filter(campaign_id=source.campaign_id)
    if regions is not None:
        qs = qs.filter(region__in=sorted(regions))
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    # Soonest due first, read straight off the message_campaign_due index (never the sent rows).
    qs = qs.order_by("next_attempt_at")
    if source.new_budget is None:
        return list(qs.values_list("pk", "region")[:limit])
    retries = list(qs.filter(first_attempt_at__isnull=False).values_list("pk", "region")[:limit])
    room = min(limit - len(retries), source.new_budget)
    fresh = list(qs.filter(first_attempt_at__isnull=True).values_list("pk", "region")[:room]) if room > 0 else []
    return retries + fresh


def _interleave(lists: list[list[tuple[int, str]]]) -> Iterator[tuple[int, str]]:
    """Round-robin across sources so two running campaigns share the pool evenly."""
    for group in itertools.zip_longest(*lists):
        for item in group:
            if item is not None:
                yield item


def _chunks(items: list[int], size: int = CHUNK) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(slots=True)
class _ServerPlan:
    server: Server
    allowance: int
    daily_remaining: int


def _plans(servers: list[Server], rows: dict[int, object], in_flight: dict[int, int]) -> list[_ServerPlan]:
    plans = []
    horizon, ceiling = horizon_seconds(), max_in_flight()
    for server in servers:
        row = rows.get(server.pk)
        if row is None:
            continue
        remaining = max(0, row.cap - row.used)
        limit = ceiling if server.min_delay_seconds <= 0 else min(ceiling, max(1, int(horizon / server.min_delay_seconds)))
        busy = in_flight.get(server.pk, 0)
        # Top a server up only once half its allowance has drained, so batches (and the
        # connections they open) stay large instead of one message every run.
        allowance = 0 if busy > limit // 2 else min(remaining, limit - busy)
        plans.append(_ServerPlan(server=server, allowance=max(0, allowance), daily_remaining=remaining))
    return plans


def _slot(plan: _ServerPlan, *, routing: bool, used: int) -> Slot:
    server = plan.server
    return Slot(
        id=server.pk,
        name=server.name,
        kind=server.kind,
        priority=server.priority,
        region=server.region if routing else "",
        reputation=server.reputation,
        # The picker stops a server at `cap`; here that is what it may take in this run.
        cap=used + plan.allowance,
        used=used,
        ip_address=server.ip_address or "",
        server=server,
    )


def claim_due(*, now: dt.datetime | None = None, rng: random.Random | None = None) -> dict[int, list[int]]:
    """Claim due messages for every eligible server and enqueue their batches; returns server id → ids."""
    now = now or timezone.now()
    day = sending_day(now)
    config = active_configuration()
    routing = bool(config and config.routing_rules)
    strict = bool(config and config.strict_routing)
    strategy = config.rotation_strategy if config else RotationStrategy.ROUND_ROBIN

    servers = eligible_servers(now=now)
    if not servers:
        return {}
    rows = quota.ensure_rows(servers, day)
    for server in servers:
        # A limit or warm-up day changed since the row was made: move the cap first.
        if server.pk in rows and rows[server.pk].cap != server.cap_for(day):
            rows[server.pk] = quota.sync_cap(server, day)
    in_flight = dict(
        Message.objects.filter(status=MessageStatus.SENDING, server_id__in=[s.pk for s in servers])
        .values_list("server_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    plans = [p for p in _plans(servers, rows, in_flight) if p.allowance > 0]
    if not plans:
        return {}

    primary = [p for p in plans if p.server.priority <= 1]
    overflow = [p for p in plans if p.server.priority > 1]
    # Daily quota priority-1 servers still have, per region: mail they can take today waits for
    # them (they may only be busy), and only the rest overflows to priority 2.
    primary_left: dict[str, int] = defaultdict(int)
    for s in servers:
        if s.priority <= 1 and s.pk in rows:
            primary_left[s.region if routing else ""] += max(0, rows[s.pk].cap - rows[s.pk].used)

    def primary_can_serve_today(region: str) -> bool:
        if not routing or not strict or not region:
            return any(n > 0 for n in primary_left.values())
        return primary_left.get(region, 0) > 0 or primary_left.get("", 0) > 0

    regions: set[str] | None = None
    if routing and strict and not any(p.server.region == "" for p in plans):
        # Strict routing: skip mail for regions nobody can serve now instead of re-reading it every run.
        regions = {p.server.region for p in plans} | {""}

    used = {s.pk: rows[s.pk].used for s in servers if s.pk in rows}
    rng = rng or random.Random()
    # Begin where the shared cycle stands, so a trickle of one message per run is rotated
    # instead of always going to the first server; the cursor moves on after a run that
    # claimed something (an idle run writes nothing, which keeps SQLite's write lock free).
    start = config.rr_cursor if config else 0
    pool1 = Pool([_slot(p, routing=routing, used=used[p.server.pk]) for p in primary], strategy=strategy,
                 strict_routing=strict, rng=rng, start=start)
    pool2 = Pool([_slot(p, routing=routing, used=used[p.server.pk]) for p in overflow], strategy=strategy,
                 strict_routing=strict, rng=rng, start=start)
    total = sum(p.allowance for p in plans)

    with transaction.atomic():
        sources = _sources(now, day)
        candidates = _interleave(
            [_due(source, now=now, limit=total, regions=regions) for source in sources]
        )
        assigned: dict[int, list[int]] = defaultdict(list)
        count = 0
        for message_id, region in candidates:
            region = region if routing else ""
            slot = pool1.pick(region)
            if slot is not None:
                primary_left[slot.region] -= 1
            elif not primary_can_serve_today(region):
                slot = pool2.pick(region)
            if slot is None:
                continue
            assigned[slot.id].append(message_id)
            count += 1
            if count >= total:
                break

        lease = now + dt.timedelta(seconds=lease_seconds())
        claims: dict[int, list[int]] = {}
        by_id = {p.server.pk: p.server for p in plans}
        for server_id, ids in assigned.items():
            granted = quota.reserve(by_id[server_id], len(ids), day=day)
            if granted <= 0:
                continue
            claimed = _claim(server_id, ids[:granted], lease=lease)
            if granted > len(claimed):
                quota.release(server_id, granted - len(claimed), day=day)
            if claimed:
                claims[server_id] = claimed
        for server_id, ids in claims.items():
            for batch in _chunks(ids, batch_size()):
                transaction.on_commit(
                    lambda server_id=server_id, batch=batch: _enqueue_batch(server_id, batch, lease, day)
                )
    if claims and config is not None:
        # Outside the claim's transaction, so single sends wait on the cursor's row lock for this UPDATE only.
        advance_cursor(config)
    return claims


def _claim(server_id: int, ids: list[int], *, lease: dt.datetime) -> list[int]:
    """Move these messages to `sending` for one server; returns the ids actually claimed.

    The WHERE on status makes the claim conditional: a message suppressed or cancelled
    since it was read is left alone (on PostgreSQL the rows are also locked since the read).
    """
    claimed: list[int] = []
    for chunk in _chunks(ids):
        changed = Message.objects.filter(pk__in=chunk, status__in=PENDING).update(
            # sent_at marks a hand-over to the server within this claim (see campaigns/sender.py).
            status=MessageStatus.SENDING, server_id=server_id, lease_expires_at=lease, sent_at=None
        )
        if changed == len(chunk):
            claimed += chunk
        elif changed:
            claimed += list(
                Message.objects.filter(
                    pk__in=chunk, status=MessageStatus.SENDING, server_id=server_id, lease_expires_at=lease
                ).values_list("pk", flat=True)
            )
    return claimed


def _enqueue_batch(server_id: int, ids: list[int], lease: dt.datetime, day: dt.date) -> None:
    from .tasks import send_batch

    try:
        send_batch.delay(server_id, ids, lease.isoformat(), day.isoformat())
    except Exception:  # noqa: BLE001 — the lease brings the messages back if the broker lost them
        log.exception("could not queue a batch of %s messages for server %s; their lease will expire", len(ids), server_id)


# --- the batch task's side of the lease -----------------------------------------------------


@dataclass(slots=True)
class BatchHandover:
    taken: list[Message]
    returned: int
    cancelled: int


def take_batch(*, server_id: int, message_ids: Iterable[int], lease: dt.datetime, day: dt.date) -> BatchHandover:
    """Take over the messages a dispatcher claimed for this task.

    Only rows still carrying the dispatcher's lease token are touched: those are ours.
    Messages of campaigns paused or cancelled since the claim are handed back (or
    cancelled) with their quota, so a pause bites even on batches already queued.
    The rest get a fresh lease for the time the batch needs.
    """
    ids = list(message_ids)
    now = timezone.now()
    fresh = now + dt.timedelta(seconds=lease_seconds())
    ours = Q(pk__in=ids, status=MessageStatus.SENDING, server_id=server_id, lease_expires_at=lease)
    live = Q(campaign__isnull=True) | Q(campaign_id__in=Campaign.objects.filter(status=Campaign.Status.RUNNING).values("pk"))
    cancelled_campaigns = Campaign.objects.filter(status=Campaign.Status.CANCELLED).values("pk")
    with transaction.atomic():
        Message.objects.filter(ours & live).update(lease_expires_at=fresh, sent_at=None)
        cancelled = Message.objects.filter(ours, campaign_id__in=cancelled_campaigns).update(
            status=MessageStatus.CANCELLED, server=None, lease_expires_at=None, reply_text="campaign cancelled"
        )
        returned = Message.objects.filter(ours).update(status=MessageStatus.QUEUED, server=None, lease_expires_at=None)
        if returned + cancelled:
            quota.release(server_id, returned + cancelled, day=day)
    taken = list(
        Message.objects.filter(
            pk__in=ids, status=MessageStatus.SENDING, server_id=server_id, lease_expires_at=fresh
        )
        # No select_related: the composer loads each campaign and prospect once per batch,
        # where a join would carry the campaign's bodies on every row.
    )
    return BatchHandover(taken=taken, returned=returned, cancelled=cancelled)


def run_batch(*, server_id: int, message_ids: list[int], lease: str, day: str) -> dict[str, int]:
    """The send-batch task's body: take over the claimed rows and send them on one connection."""
    from .sender import send_batch

    lease_at = dt.datetime.fromisoformat(lease)
    sending_on = dt.date.fromisoformat(day)
    server = Server.objects.select_related("warmup_schedule").filter(pk=server_id).first()
    if server is None:
        # The server was deleted after the claim: the lease expiry puts its messages back.
        return {"taken": 0}
    handover = take_batch(server_id=server_id, message_ids=message_ids, lease=lease_at, day=sending_on)
    summary = {"taken": len(handover.taken), "returned": handover.returned, "cancelled": handover.cancelled}
    if not handover.taken:
        return summary
    result = send_batch(server=server, messages=handover.taken, day=sending_on)
    summary.update({str(status): n for status, n in result.counts.items()})
    return summary
