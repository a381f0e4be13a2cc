"""Per-server daily aggregates, kept current as outcomes and events arrive (no page counts raw rows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.db import IntegrityError, transaction
from django.db.models import F

from .daytime import sending_day
from .models import ServerDailyStat

COUNTERS = frozenset(
    {"sent", "delivered", "deferred", "bounced", "complained", "failed", "unknown", "policy_blocks", "returned",
     "health_checks", "health_failures"}
)


def record(server_id: int, counts: Mapping[str, int], *, day: dt.date | None = None) -> None:
    """Add `counts` (e.g. {"sent": 180, "deferred": 20}) to the server's row for `day` in one UPDATE."""
    increments = {k: F(k) + v for k, v in counts.items() if v}
    unknown = set(increments) - COUNTERS
    if unknown:
        raise ValueError(f"unknown counters: {sorted(unknown)}")
    if not increments:
        return
    day = day or sending_day()
    if ServerDailyStat.objects.filter(server_id=server_id, day=day).update(**increments):
        return
    try:
        with transaction.atomic():
            ServerDailyStat.objects.create(server_id=server_id, day=day, **{k: v for k, v in counts.items() if v})
            return
    except IntegrityError:
        pass  # created concurrently: fall through to the UPDATE
    ServerDailyStat.objects.filter(server_id=server_id, day=day).update(**increments)


def mark_listed(server_id: int, listed: bool, *, day: dt.date | None = None) -> None:
    day = day or sending_day()
    obj, _ = ServerDailyStat.objects.get_or_create(server_id=server_id, day=day)
    if obj.listed != listed and listed:
        ServerDailyStat.objects.filter(pk=obj.pk).update(listed=True)
