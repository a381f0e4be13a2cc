"""Reads for the dashboard. Every number comes from aggregates (ServerDailyStat through
servers.statistics, Quota, Campaign counters) so the pages stay fast with millions of
messages: nothing here counts Message rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Q, Sum, When
from django.db.models.functions import Coalesce

from servers.daytime import sending_day
from servers.models import Quota, Server, ServerDailyStat, ServerKind, ServerState
from servers.statistics import daily_series

from .display import Status, server_status

CHART_FIELDS = ("sent", "delivered", "deferred", "bounced", "failed", "complained")
# Server.is_configured, as a filter.
_CONFIGURED = (Q(kind=ServerKind.SMTP) & ~Q(host="")) | (Q(kind=ServerKind.SENDGRID) & ~Q(api_key=""))


@dataclass
class ServerRow:
    server: Server
    status: Status
    used_today: int
    cap_today: int
    warmup_day: int | None
    warmup_total: int | None


def server_rows(*, include_idle: bool = False, day: dt.date | None = None) -> list[ServerRow]:
    """The servers table: one query for servers, one for today's quota rows."""
    day = day or sending_day()
    servers = Server.objects.select_related("warmup_schedule")
    if not include_idle:
        servers = servers.filter(in_pool=True)
    servers = list(servers)
    quota = {
        sid: (used, cap)
        for sid, used, cap in Quota.objects.filter(server_id__in=[s.pk for s in servers], day=day).values_list(
            "server_id", "used", "cap"
        )
    }
    return [server_row(s, quota.get(s.pk, (0, s.cap_for(day))), day=day) for s in servers]


def server_row(server: Server, quota: tuple[int, int] | None = None, *, day: dt.date | None = None) -> ServerRow:
    day = day or sending_day()
    if quota is None:
        found = Quota.objects.filter(server=server, day=day).values_list("used", "cap").first()
        quota = (found[0], found[1]) if found else (0, server.cap_for(day))
    warming = server.in_warmup(day)
    return ServerRow(
        server=server,
        status=server_status(server),
        used_today=quota[0],
        cap_today=quota[1],
        warmup_day=server.warmup_day(day) if warming else None,
        warmup_total=server.warmup_schedule.full_capacity_day if warming else None,
    )


@dataclass
class Overview:
    servers_total: int
    servers_active: int
    ips: int
    sent: int
    delivered: int
    failed: int
    average_reputation: float | None
    capacity_used: int
    capacity_total: int


def overview(*, day: dt.date | None = None) -> Overview:
    """The global cards: the seed's getStatistics().global plus today's capacity, in four queries.

    get_statistics() also works out every server's totals and a daily series, which this page
    does not show; the overview is polled every few seconds, so it reads only what it shows.
    The definitions are the same (totalDelivered = sent - returned, totalFailed = bounced +
    failed, over the pool's servers, all time); a test holds the two equal.
    """
    day = day or sending_day()
    pool = list(
        Server.objects.filter(in_pool=True)
        .annotate(configured=Case(When(_CONFIGURED, then=True), default=False))
        .values_list("pk", "state", "ip_address", "reputation", "configured")
    )
    ids = [row[0] for row in pool]
    totals = ServerDailyStat.objects.filter(server_id__in=ids).aggregate(
        sent=Coalesce(Sum("sent"), 0),
        returned=Coalesce(Sum("returned"), 0),
        bounced=Coalesce(Sum("bounced"), 0),
        failed=Coalesce(Sum("failed"), 0),
    )
    capacity = Quota.objects.filter(server_id__in=ids, day=day).aggregate(used=Sum("used"), cap=Sum("cap"))
    configured = [row for row in pool if row[4]]
    return Overview(
        servers_total=len(pool),
        servers_active=sum(1 for row in configured if row[1] == ServerState.ACTIVE),
        ips=len({row[2] for row in pool if row[2]}),
        sent=totals["sent"],
        delivered=max(0, totals["sent"] - totals["returned"]),
        failed=totals["bounced"] + totals["failed"],
        average_reputation=round(sum(row[3] for row in configured) / len(configured), 1) if configured else None,
        capacity_used=capacity["used"] or 0,
        capacity_total=capacity["cap"] or 0,
    )


def daily_volume(*, days: int = 14, server: Server | None = None, end: dt.date | None = None) -> dict[str, Any]:
    """Chart data, column-wise: {"labels": [...], "sent": [...], ..., "reputation": [...]}."""
    series = daily_series([server.pk] if server is not None else None, day=end or sending_day(), days=days)
    chart: dict[str, Any] = {"labels": [row["date"] for row in series]}
    for name in (*CHART_FIELDS, "reputation"):
        chart[name] = [row[name] for row in series]
    # The seed's totalFailed: hard bounces plus failures.
    chart["undelivered"] = [row["bounced"] + row["failed"] for row in series]
    return chart


def reputation_history(server: Server, volume: dict[str, Any]) -> dict[str, Any]:
    """The stored daily reputation from a server's `daily_volume`; today's point is the live value,
    so the line ends where the servers table does."""
    values = list(volume["reputation"])
    values[-1] = round(server.reputation, 1)
    return {"labels": volume["labels"], "reputation": values}
