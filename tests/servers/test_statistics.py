from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns import events
from campaigns.models import DeliveryEvent, Message, MessageStatus
from campaigns.sending import send_email
from servers.daytime import sending_day
from servers.models import Quota, ServerState
from servers.outcome import Category
from servers.statistics import daily_series, get_statistics
from tests.support.monitoring import default_schedule, make_configuration, make_relay_server, make_server, stat
from tests.support.relays import quick_smtp_timeouts, relay, relay_factory  # noqa: F401

pytestmark = pytest.mark.django_db

SEED_GLOBAL_KEYS = {"totalServers", "activeServers", "totalIPs", "totalSent", "totalDelivered", "totalFailed",
                    "averageReputation"}
SEED_SERVER_KEYS = {"name", "totalSent", "totalDelivered", "totalFailed", "reputation", "health", "warmup"}


@pytest.fixture(autouse=True)
def quick_timeouts(settings):
    quick_smtp_timeouts(settings)


def test_statistics_equal_what_the_relays_actually_received(relay_factory):
    first, second = relay_factory(name="relay-1"), relay_factory(name="relay-2")
    make_configuration(server_count=2, rotation_strategy="round-robin")
    make_relay_server(1, first, ip_address="192.0.2.1")
    make_relay_server(2, second, ip_address="192.0.2.2")

    results = [send_email(to=f"agency{n}@example.com", subject="Hello", text="Hi") for n in range(9)]
    bounced = [send_email(to=f"bounce-{n}@example.com", subject="Hello", text="Hi") for n in range(2)]

    assert all(r["success"] for r in results)
    assert not any(r["success"] for r in bounced)
    stats = get_statistics()
    received = {"SMTP Server 1": len(first.messages), "SMTP Server 2": len(second.messages)}
    assert sum(received.values()) == 9
    assert stats["global"]["totalSent"] == 9
    assert stats["global"]["totalDelivered"] == 9
    assert stats["global"]["totalFailed"] == 2
    assert {s["name"]: s["totalSent"] for s in stats["servers"]} == received
    assert {s["name"]: s["warmup"]["sentToday"] for s in stats["servers"]} == {
        name: Quota.objects.get(server__name=name, day=sending_day()).used for name in received
    }
    [today] = [d for d in stats["daily"] if d["date"] == sending_day().isoformat()]
    assert (today["sent"], today["delivered"], today["bounced"]) == (9, 9, 2)

    # A bounce that arrives later takes the message out of "delivered", not out of "sent".
    message = Message.objects.filter(status=MessageStatus.SENT).first()
    events.record_event(message, DeliveryEvent.Kind.BOUNCED, source="dsn", category=Category.HARD,
                        external_id="dsn:test")

    later = get_statistics()["global"]
    assert (later["totalSent"], later["totalDelivered"], later["totalFailed"]) == (9, 8, 3)


def test_the_shapes_are_the_seeds():
    make_configuration()
    make_server(1)

    stats = get_statistics()

    assert set(stats) == {"global", "servers", "daily"}
    assert set(stats["global"]) == SEED_GLOBAL_KEYS
    assert set(stats["servers"][0]) == SEED_SERVER_KEYS
    assert set(stats["servers"][0]["warmup"]) == {"day", "sentToday", "dailyLimit"}
    assert len(stats["daily"]) == 30


def test_pool_counts_reputation_and_health_come_from_the_servers():
    make_configuration()
    make_server(1, reputation=90.0, ip_address="192.0.2.1")
    make_server(2, reputation=80.0, ip_address="192.0.2.2", state=ServerState.DOWN)
    make_server(3, reputation=100.0, ip_address="192.0.2.2", state=ServerState.PAUSED_BLOCKLISTED)
    make_server(4, host="", ip_address=None, state=ServerState.UNCONFIGURED)
    make_server(5, ip_address="192.0.2.5", in_pool=False)

    stats = get_statistics()

    assert stats["global"]["totalServers"] == 4
    assert stats["global"]["activeServers"] == 1
    assert stats["global"]["totalIPs"] == 2
    assert stats["global"]["averageReputation"] == 90.0
    assert [s["health"] for s in stats["servers"]] == ["up", "down", "blocklisted", "unconfigured"]


def test_warmup_shows_the_day_todays_cap_and_quota_used():
    make_configuration()
    today = sending_day()
    server = make_server(1, warmup_enabled=True, warmup_schedule=default_schedule(),
                         warmup_started_on=today - dt.timedelta(days=4))
    Quota.objects.create(server=server, day=today, cap=400, used=85)

    [entry] = get_statistics()["servers"]

    assert entry["warmup"] == {"day": 5, "sentToday": 85, "dailyLimit": 400}


def test_totals_sum_every_day_and_the_daily_series_is_zero_filled():
    make_configuration()
    server = make_server(1)
    stat(server, 0, sent=100, returned=3, bounced=5, failed=2, deferred=7, complained=1, delivered=40)
    stat(server, 2, sent=50)
    stat(server, 40, sent=1000, failed=10)

    stats = get_statistics()
    series = daily_series(day=sending_day(), days=3)

    assert stats["global"]["totalSent"] == 1150
    assert stats["global"]["totalDelivered"] == 1147
    assert stats["global"]["totalFailed"] == 17
    assert [d["sent"] for d in series] == [50, 0, 100]
    assert series[2] == {
        "date": sending_day().isoformat(), "sent": 100, "delivered": 97, "confirmed": 40, "deferred": 7,
        "bounced": 5, "complained": 1, "failed": 2, "unknown": 0, "reputation": None,
    }


def test_statistics_never_count_message_rows():
    make_configuration()
    server = make_server(1)
    stat(server, 0, sent=10)

    with CaptureQueriesContext(connection) as queries:
        get_statistics()

    assert queries.captured_queries
    assert not [q["sql"] for q in queries.captured_queries if "campaigns_message" in q["sql"]]
