"""get_statistics(): the seed's getStatistics() shapes, computed from aggregates only.

Every number comes from ServerDailyStat (per server and day) and Quota; no raw Message
row is ever counted, so the page costs the same at ten messages or ten million.

What the counters mean (docs/REPUTATION.md, "What the statistics count"):
- totalSent: messages a relay accepted (250 after DATA; 202 from SendGrid's API).
- totalDelivered: sent minus those later returned as undeliverable (an asynchronous
  bounce/DSN failure, a SendGrid bounce or drop). Positive confirmations (SendGrid
  "delivered", DSN "delivered") are counted separately as `confirmed` in the daily series
  but do not change totalDelivered: a relay accepting mail is the usual last word.
- totalFailed: messages that will never be delivered: hard bounces (at SMTP time or
  later) and failures (policy blocks, other permanent errors, given up after retries).
  Because a message refused at SMTP time was never "sent", totalSent is not
  totalDelivered + totalFailed; totalSent - totalDelivered is what was returned later.
- The global and per-server totals cover the servers in the active pool, over all time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Avg, Q, Sum
from django.db.models.functions import Coalesce

from .daytime import sending_day
from .models import Quota, Server, ServerDailyStat, ServerKind, ServerState

DAILY_DAYS = 30
HEALTH = {
    ServerState.ACTIVE: "up",
    ServerState.DOWN: "down",
    ServerState.PAUSED_BLOCKLISTED: "blocklisted",
    ServerState.PAUSED_MANUAL: "paused",
    ServerState.UNCONFIGURED: "unconfigured",
}
DAILY_FIELDS = ("sent", "returned", "confirmed", "deferred", "bounced", "complained", "failed", "unknown")


TOTALS = ("sent", "returned", "bounced", "failed")


def _totals(rows: Any) -> dict[str, int]:
    found = rows.aggregate(**{f"total_{name}": Coalesce(Sum(name), 0) for name in TOTALS})
    return {name: found[f"total_{name}"] for name in TOTALS}


def _shape_totals(t: dict[str, int]) -> dict[str, int]:
    return {
        "totalSent": t["sent"],
        "totalDelivered": max(0, t["sent"] - t["returned"]),
        "totalFailed": t["bounced"] + t["failed"],
    }


def pool_servers() -> list[Server]:
    return list(
        Server.objects.filter(in_pool=True).select_related("warmup_schedule").order_by("priority", "kind", "slot")
    )


def health_of(server: Server) -> str:
    return HEALTH.get(server.state, server.state)


def get_statistics(*, day: dt.date | None = None, days: int = DAILY_DAYS) -> dict[str, Any]:
    day = day or sending_day()
    servers = pool_servers()
    ids = [s.pk for s in servers]
    stats = ServerDailyStat.objects.filter(server_id__in=ids)

    # Annotations may not reuse a field's name, hence the prefix.
    per_server = {
        row["server_id"]: {name: row[f"total_{name}"] for name in TOTALS}
        for row in stats.values("server_id").annotate(**{f"total_{name}": Coalesce(Sum(name), 0) for name in TOTALS})
    }
    used_today = dict(Quota.objects.filter(server_id__in=ids, day=day).values_list("server_id", "used"))
    empty = dict.fromkeys(TOTALS, 0)

    configured = [s for s in servers if s.is_configured]
    reputations = [s.reputation for s in configured]
    ips = {s.ip_address for s in servers if s.ip_address}

    return {
        "global": {
            "totalServers": len(servers),
            "activeServers": sum(1 for s in configured if s.state == ServerState.ACTIVE),
            "totalIPs": len(ips),
            **_shape_totals(_totals(stats)),
            "averageReputation": round(sum(reputations) / len(reputations), 1) if reputations else None,
        },
        "servers": [
            {
                "name": s.name,
                **_shape_totals(per_server.get(s.pk, empty)),
                "reputation": round(s.reputation, 1),
                "health": health_of(s),
                "warmup": {
                    "day": s.warmup_day(day) if s.warmup_enabled and s.kind == ServerKind.SMTP else None,
                    "sentToday": used_today.get(s.pk, 0),
                    "dailyLimit": s.cap_for(day),
                },
            }
            for s in servers
        ],
        "daily": daily_series(ids, day=day, days=days),
    }


def daily_series(
    server_ids: list[int] | None = None, *, day: dt.date | None = None, days: int = DAILY_DAYS
) -> list[dict[str, Any]]:
    """One entry per day, oldest first, zero-filled: the pool's (or these servers') counters for charts.

    `delivered` is sent - returned; `confirmed` counts positive delivery reports.
    """
    day = day or sending_day()
    first = day - dt.timedelta(days=days - 1)
    rows = ServerDailyStat.objects.filter(day__gte=first, day__lte=day)
    if server_ids is not None:
        rows = rows.filter(server_id__in=server_ids)
    sums = {f"total_{name}": Coalesce(Sum("delivered" if name == "confirmed" else name), 0) for name in DAILY_FIELDS}
    found = {
        row["day"]: {
            **{name: row[f"total_{name}"] for name in DAILY_FIELDS},
            "reputation": row["average_reputation"],
        }
        for row in rows.values("day").annotate(
            **sums, average_reputation=Avg("reputation", filter=Q(reputation__isnull=False))
        )
    }
    series = []
    for offset in range(days):
        current = first + dt.timedelta(days=offset)
        row = found.get(current, {})
        sent = row.get("sent", 0)
        returned = row.get("returned", 0)
        series.append(
            {
                "date": current.isoformat(),
                "sent": sent,
                "delivered": max(0, sent - returned),
                "confirmed": row.get("confirmed", 0),
                "deferred": row.get("deferred", 0),
                "bounced": row.get("bounced", 0),
                "complained": row.get("complained", 0),
                "failed": row.get("failed", 0),
                "unknown": row.get("unknown", 0),
                "reputation": round(row["reputation"], 1) if row.get("reputation") is not None else None,
            }
        )
    return series


def server_daily(server: Server, *, day: dt.date | None = None, days: int = DAILY_DAYS) -> list[dict[str, Any]]:
    """The same series for one server, for the server detail charts."""
    return daily_series([server.pk], day=day, days=days)
