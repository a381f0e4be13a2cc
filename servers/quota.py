"""Daily caps, enforced only through conditional UPDATEs.

`reserve` never reads-then-writes a count: the UPDATE's own WHERE clause (used + k <= cap)
decides, so any number of workers on any number of machines can call it at once on SQLite
or PostgreSQL without passing the cap. Reservations are taken in blocks for speed and the
unused part is given back with `release`.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F

from .daytime import sending_day
from .models import Quota, Server

MAX_ATTEMPTS = 16


def sync_cap(server: Server, day: dt.date | None = None) -> Quota:
    """Create today's row, or move its cap after a change of limit or warm-up day."""
    day = day or sending_day()
    cap = server.cap_for(day)
    updated = Quota.objects.filter(server_id=server.pk, day=day).exclude(cap=cap).update(cap=cap)
    if not updated:
        try:
            with transaction.atomic():
                Quota.objects.get_or_create(server_id=server.pk, day=day, defaults={"cap": cap})
        except IntegrityError:
            pass  # another worker created it a moment ago
    return Quota.objects.get(server_id=server.pk, day=day)


def ensure_rows(servers: list[Server], day: dt.date | None = None) -> dict[int, Quota]:
    """Today's quota rows for these servers, creating the missing ones in one statement."""
    day = day or sending_day()
    rows = {q.server_id: q for q in Quota.objects.filter(server__in=[s.pk for s in servers], day=day)}
    missing = [Quota(server_id=s.pk, day=day, cap=s.cap_for(day)) for s in servers if s.pk not in rows]
    if missing:
        Quota.objects.bulk_create(missing, ignore_conflicts=True)
        rows = {q.server_id: q for q in Quota.objects.filter(server__in=[s.pk for s in servers], day=day)}
    return rows


def reserve(server: Server, wanted: int, *, day: dt.date | None = None) -> int:
    """Reserve up to `wanted` sends for today; returns how many were granted (0 when the cap is reached).

    A reservation commits as durably as any write: a PostgreSQL crash must not forget quota
    that a message already sent used. The dispatcher reserves inside its claim's transaction
    and a single send inside the one that creates its Message row, so neither pays a flush
    of its own for it."""
    if wanted <= 0:
        return 0
    day = day or sending_day()
    # The common case, a block that fits, is one statement: no read first.
    if _take(server.pk, day, wanted):
        return wanted
    for _ in range(MAX_ATTEMPTS):
        row = Quota.objects.filter(server_id=server.pk, day=day).values_list("cap", "used").first()
        if row is None:
            sync_cap(server, day)
            if _take(server.pk, day, wanted):
                return wanted
            continue
        cap, used = row
        grant = min(wanted, cap - used)
        if grant <= 0:
            return 0
        if _take(server.pk, day, grant):
            return grant
        # Someone else reserved between the read and the UPDATE: read again and retry with what is left.
    return _reserve_locked(server, wanted, day)


# Written out rather than built by the ORM: it is the hottest statement of the quota, and
# compiling the queryset cost several times the statement itself (measured in `make bench`).
_TAKE_SQL = f"UPDATE {Quota._meta.db_table} SET used = used + %s WHERE server_id = %s AND day = %s AND used + %s <= cap"


def _take(server_id: int, day: dt.date, count: int) -> bool:
    """The conditional UPDATE itself: all of `count` or nothing, in one statement."""
    connection = connections[router.db_for_write(Quota)]
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SQL, [count, server_id, connection.ops.adapt_datefield_value(day), count])
        return cursor.rowcount == 1


def _reserve_locked(server: Server, wanted: int, day: dt.date) -> int:
    """Under heavy contention, take the row lock and settle it: never report 0 while quota is left."""
    with transaction.atomic():
        row = Quota.objects.select_for_update().filter(server_id=server.pk, day=day).values_list("cap", "used").first()
        if row is None:
            return 0
        grant = min(wanted, row[0] - row[1])
        if grant <= 0:
            return 0
        updated = Quota.objects.filter(server_id=server.pk, day=day, used__lte=F("cap") - grant).update(
            used=F("used") + grant
        )
        return grant if updated else 0


def release(server_id: int, count: int, *, day: dt.date) -> None:
    """Give back reserved sends that were not used (failed connection, paused campaign, …)."""
    if count > 0:
        Quota.objects.filter(server_id=server_id, day=day, used__gte=count).update(used=F("used") - count)


def used_today(server_ids: list[int], day: dt.date | None = None) -> dict[int, tuple[int, int]]:
    day = day or sending_day()
    return {sid: (used, cap) for sid, used, cap in Quota.objects.filter(server_id__in=server_ids, day=day).values_list("server_id", "used", "cap")}
