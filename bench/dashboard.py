"""Dashboard: server time of the overview and server-detail pages over a large message log.

History is generated straight into the tables (COPY on PostgreSQL, executemany on SQLite):
N messages of one finished campaign spread over the five servers and the 30 days before
today, one DeliveryEvent per message (INSERT … SELECT from the messages), and the matching
ServerDailyStat rows, as the pipeline would have left them. Then each page is requested
through Django's test Client as a signed-in operator; the time is the full request
(middleware, view, queries, template), medians and p95 over repeated requests.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections import Counter
from typing import Any

from django.db import connection, transaction

from .api_latency import percentile
from .fixtures import bulk_insert, operator

DAYS = 30
# Status mix of a healthy campaign: mostly sent, a few deferred then sent, bounces and failures.
MIX = [("sent", 0.962), ("bounced", 0.018), ("failed", 0.01), ("unknown", 0.002), ("deferred", 0.008)]
EVENT_KIND = {"sent": "sent", "bounced": "bounced", "failed": "failed", "unknown": "unknown", "deferred": "deferred"}
REPLY = {
    "sent": (250, "2.0.0", "250 2.0.0 queued"),
    "bounced": (550, "5.1.1", "550 5.1.1 user unknown"),
    "failed": (554, "5.7.1", "554 5.7.1 message refused"),
    "unknown": (None, "", "no reply after the message was sent"),
    "deferred": (451, "4.7.1", "451 4.7.1 try again later"),
}


def seed(count: int) -> dict[str, Any]:
    from campaigns.models import Campaign, DeliveryEvent, Message, ProspectList
    from servers.daytime import sending_day
    from servers.models import ServerDailyStat
    from servers.models import Server

    servers = list(Server.objects.filter(in_pool=True, kind="smtp").order_by("slot").values_list("pk", flat=True))
    today = sending_day()
    rng = random.Random(42)
    statuses = [s for s, _ in MIX]
    weights = [w for _, w in MIX]
    history = ProspectList.objects.create(name="dashboard history")
    campaign = Campaign.objects.create(
        name="dashboard history", prospect_list=history, from_email="offers@bench.example", subject="History",
        status=Campaign.Status.DONE, total=count,
    )
    stats: dict[tuple[int, dt.date], Counter[str]] = {}
    # Timestamps as text the way Django stores them (UTC), built once per second-of-day: the
    # seeding is setup, and a datetime object per row made it a minute slower on SQLite.
    suffix = "+00:00" if connection.vendor == "postgresql" else ""
    drawn = rng.choices(statuses, weights, k=count)

    def rows():
        for i in range(count):
            server = servers[i % len(servers)]
            days_ago = 1 + (i * DAYS) // count
            day = today - dt.timedelta(days=days_ago)
            second = (i * 7) % 86000
            at = f"{day.isoformat()} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}{suffix}"
            status = drawn[i]
            code, enhanced, text = REPLY[status]
            stats.setdefault((server, day), Counter())[status] += 1
            yield (
                campaign.pk, f"hist{i}@agency{i % 500}.example", f"Agent {i}", "", status, 1, at, at, server,
                code, enhanced, text, f"<hist{i}@bench.example>", at, at if status == "sent" else None,
            )

    started = time.perf_counter()
    bulk_insert(
        Message._meta.db_table,
        ["campaign_id", "to_email", "to_name", "region", "status", "attempts", "first_attempt_at",
         "next_attempt_at", "server_id", "reply_code", "enhanced_status", "reply_text", "message_id",
         "created_at", "sent_at"],
        rows(),
    )
    kinds = " ".join(f"WHEN '{status}' THEN '{kind}'" for status, kind in EVENT_KIND.items())
    events = DeliveryEvent._meta.db_table
    messages = Message._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {events} (message_id, server_id, kind, created_at, code, enhanced_status, category, text, source) "
            f"SELECT id, server_id, CASE status {kinds} END, first_attempt_at, reply_code, enhanced_status, '', "
            f"reply_text, 'smtp' FROM {messages} WHERE campaign_id = %s",
            [campaign.pk],
        )
    daily = []
    for (server, day), counts in stats.items():
        daily.append(ServerDailyStat(
            server_id=server, day=day, sent=counts["sent"], delivered=counts["sent"], deferred=counts["deferred"],
            bounced=counts["bounced"], failed=counts["failed"], unknown=counts["unknown"],
            policy_blocks=counts["failed"], health_checks=288, health_failures=0, reputation=97.0,
        ))
    ServerDailyStat.objects.bulk_create(daily, ignore_conflicts=True)
    for status, n in Counter({s: sum(c[s] for c in stats.values()) for s in statuses}).items():
        if status in ("sent", "bounced", "failed", "unknown"):
            Campaign.objects.filter(pk=campaign.pk).update(**{status: n})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {messages}; ANALYZE {events}")
    return {"messages": count, "events": count, "daily_stats": len(daily), "seed_seconds": round(time.perf_counter() - started, 1)}


def _time(client: Any, url: str, requests: int) -> dict[str, Any]:
    for _ in range(3):
        response = client.get(url)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            return {"error": f"{url} answered {response.status_code}"}
    return {
        "url": url,
        "median_ms": round(statistics.median(timings), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "bytes": len(response.content),
    }


def measure(*, messages: int, requests: int) -> dict[str, Any]:
    from django.test import Client
    from django.urls import reverse

    from servers.models import Server

    seeded = seed(messages)
    client = Client()
    client.force_login(operator())
    server = Server.objects.filter(in_pool=True, kind="smtp").order_by("slot").first()
    assert server is not None
    out: dict[str, Any] = {**seeded, "requests": requests, "client": "django.test.Client (in-process server time)"}
    out["overview"] = _time(client, reverse("dashboard:overview"), requests)
    out["server_detail"] = _time(client, reverse("dashboard:server-detail", args=[server.pk]), requests)
    for page in ("overview", "server_detail"):
        if "error" in out[page]:
            out["error"] = out[page]["error"]
    return out
