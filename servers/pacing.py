"""min_delay_seconds between emails of one server, shared by every worker.

Each sender books a run of slots by moving Server.next_send_at forward with a compare-and-set
UPDATE, then sends its i-th message no earlier than start + i × delay. Two workers can never
book overlapping slots, so the spacing holds across processes and machines.
"""

from __future__ import annotations

import datetime as dt
import time

from django.utils import timezone

from .models import Server

MAX_ATTEMPTS = 32


def book(server: Server, count: int) -> dt.datetime:
    """Book `count` consecutive send slots; returns when the first may leave."""
    now = timezone.now()
    delay = server.min_delay_seconds
    if delay <= 0 or count <= 0:
        return now
    for _ in range(MAX_ATTEMPTS):
        current = Server.objects.filter(pk=server.pk).values_list("next_send_at", flat=True).first()
        now = timezone.now()
        start = max(now, current) if current else now
        new = start + dt.timedelta(seconds=delay * count)
        qs = Server.objects.filter(pk=server.pk)
        qs = qs.filter(next_send_at=current) if current else qs.filter(next_send_at__isnull=True)
        if qs.update(next_send_at=new):
            return start
    raise RuntimeError(f"could not book send slots on {server.name} after {MAX_ATTEMPTS} attempts")


def wait_until(moment: dt.datetime) -> None:
    pause = (moment - timezone.now()).total_seconds()
    if pause > 0:
        time.sleep(pause)


def backlog_seconds(server: Server) -> float:
    """How far ahead the server's slots are already booked."""
    if not server.next_send_at:
        return 0.0
    return max(0.0, (server.next_send_at - timezone.now()).total_seconds())
