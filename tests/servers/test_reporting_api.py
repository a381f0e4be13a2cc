"""GET /api/statistics/ and GET /api/recommendations/: the seed's getStatistics() and
getRecommendations() shapes, with numbers that match what really went through the relays."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import time_machine

from campaigns.models import Message, MessageStatus
from campaigns.sending import send_email
from servers.models import DomainAuthCheck, Quota, Server, ServerState
from tests.support.monitoring import default_schedule, make_configuration, make_relay_server, make_server
from tests.support.relays import quick_smtp_timeouts, relay, relay_factory  # noqa: F401

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()
SEED_GLOBAL_KEYS = {"totalServers", "activeServers", "totalIPs", "totalSent", "totalDelivered", "totalFailed",
                    "averageReputation"}
SEED_SERVER_KEYS = {"name", "totalSent", "totalDelivered", "totalFailed", "reputation", "health", "warmup"}
DAILY_KEYS = {"date", "sent", "delivered", "confirmed", "deferred", "bounced", "complained", "failed", "unknown",
              "reputation"}


@pytest.fixture(autouse=True)
def clock():
    # A fixed day, so warm-up days and the date in the warm-up note are known; the clock still runs.
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(autouse=True)
def mailops_settings(settings):
    quick_smtp_timeouts(settings, SENDER_DOMAIN="mailops.test", DKIM_SELECTOR="mo1")
    # SPF, DKIM and DMARC all published: the sender-domain rule stays quiet.
    DomainAuthCheck.objects.create(
        domain="mailops.test", dkim_selector="mo1", spf="v=spf1 -all", dkim="v=DKIM1; p=abc", dmarc="v=DMARC1; p=reject"
    )


@pytest.fixture
def pool(relay_factory) -> dict[str, tuple[Server, object]]:
    """Two relays in rotation (one warming up since today) and a third server that is down."""
    make_configuration(server_count=3, rotation_strategy="round-robin")
    first, second = relay_factory(name="relay-1"), relay_factory(name="relay-2")
    warm = make_relay_server(1, first, ip_address="192.0.2.1", reputation=95.8, warmup_enabled=True,
                             warmup_schedule=default_schedule(), warmup_started_on=TODAY)
    full = make_relay_server(2, second, ip_address="192.0.2.2", reputation=88.0)
    down = make_server(3, ip_address="192.0.2.3", reputation=31.0, state=ServerState.DOWN,
                       state_reason="connection refused")
    return {"SMTP Server 1": (warm, first), "SMTP Server 2": (full, second), "SMTP Server 3": (down, None)}


def send_some() -> None:
    results = [send_email(to=f"agency{n}@example.com", subject="Hello", text="Hi") for n in range(7)]
    bounced = [send_email(to=f"bounce-{n}@example.com", subject="Hello", text="Hi") for n in range(3)]
    assert all(r["success"] for r in results)
    assert not any(r["success"] for r in bounced)


def test_statistics_have_the_seeds_shape_and_count_what_the_relays_received(viewer_api, pool):
    send_some()

    response = viewer_api.get("/api/statistics/")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"global", "servers", "daily"}
    assert set(body["global"]) == SEED_GLOBAL_KEYS
    received = {name: len(relay.messages) if relay else 0 for name, (_, relay) in pool.items()}
    assert sum(received.values()) == 7 and received["SMTP Server 3"] == 0
    bounced = Counter(
        Message.objects.filter(status=MessageStatus.BOUNCED).values_list("server__name", flat=True)
    )
    assert sum(bounced.values()) == 3
    assert body["global"] == {
        "totalServers": 3,
        "activeServers": 2,
        "totalIPs": 3,
        "totalSent": 7,
        "totalDelivered": 7,
        "totalFailed": 3,
        "averageReputation": round((95.8 + 88.0 + 31.0) / 3, 1),
    }

    servers = {entry["name"]: entry for entry in body["servers"]}
    assert list(servers) == ["SMTP Server 1", "SMTP Server 2", "SMTP Server 3"]
    for name, entry in servers.items():
        assert set(entry) == SEED_SERVER_KEYS
        assert set(entry["warmup"]) == {"day", "sentToday", "dailyLimit"}
        assert (entry["totalSent"], entry["totalDelivered"], entry["totalFailed"]) == (
            received[name], received[name], bounced[name]
        )
    assert servers["SMTP Server 1"]["warmup"]["sentToday"] == Quota.objects.get(server=pool["SMTP Server 1"][0]).used
    assert servers["SMTP Server 1"]["warmup"]["sentToday"] >= received["SMTP Server 1"] > 0
    assert {name: (e["reputation"], e["health"]) for name, e in servers.items()} == {
        "SMTP Server 1": (95.8, "up"), "SMTP Server 2": (88.0, "up"), "SMTP Server 3": (31.0, "down"),
    }
    # Day 1 of the 6-day warm-up: 50 today. Without warm-up: the server's own limit, and no day.
    assert (servers["SMTP Server 1"]["warmup"]["day"], servers["SMTP Server 1"]["warmup"]["dailyLimit"]) == (1, 50)
    assert servers["SMTP Server 2"]["warmup"] == {
        "day": None, "sentToday": Quota.objects.get(server=pool["SMTP Server 2"][0]).used, "dailyLimit": 500,
    }
    assert servers["SMTP Server 3"]["warmup"] == {"day": None, "sentToday": 0, "dailyLimit": 500}

    daily = body["daily"]
    assert len(daily) == 30
    assert all(set(entry) == DAILY_KEYS for entry in daily)
    assert [entry["date"] for entry in daily] == [(TODAY - dt.timedelta(days=29 - n)).isoformat() for n in range(30)]
    today = daily[-1]
    assert (today["sent"], today["delivered"], today["bounced"], today["failed"], today["deferred"]) == (7, 7, 3, 0, 0)
    assert all(entry["sent"] == 0 for entry in daily[:-1])


def test_statistics_and_recommendations_need_a_signed_in_user(api_client):
    assert api_client.get("/api/statistics/").status_code == 401
    assert api_client.get("/api/recommendations/").status_code == 401


def test_recommendations_are_a_level_and_message_for_each_rule_that_fires(viewer_api, pool):
    send_some()

    response = viewer_api.get("/api/recommendations/")

    assert response.status_code == 200
    assert response.json() == [
        {"level": "critical", "message": "SMTP Server 3 is down: connection refused"},
        {"level": "warning", "message": "Average reputation is below 80%. Slow down."},
        {"level": "info", "message": "1 server is warming up. Full capacity soon. "
                                     "It reaches full capacity on March 15, 2026."},
    ]


def test_recommendations_come_in_spanish_for_accept_language_es(viewer_api, pool):
    response = viewer_api.get("/api/recommendations/", headers={"Accept-Language": "es"})

    assert response.status_code == 200
    assert response["Content-Language"] == "es"
    # Worded as the seed's getRecommendations() example.
    assert response.json() == [
        {"level": "critical", "message": "Servidor caído: SMTP Server 3. Error: connection refused"},
        {"level": "warning", "message": "La reputación promedio está por debajo del 80%. Reduce la velocidad."},
        {"level": "info", "message": "1 servidor está en warmup. Capacidad completa pronto. "
                                     "Llega a capacidad completa el 15 de marzo de 2026."},
    ]
    # And the next request without the header is in English again.
    assert viewer_api.get("/api/recommendations/").json()[1]["message"] == "Average reputation is below 80%. Slow down."
