"""The pages the benchmark times read aggregates only: no query touches the message table,
and the number of queries does not grow with the data."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from campaigns.models import DeliveryEvent, Message

pytestmark = pytest.mark.django_db

RAW_TABLES = (Message._meta.db_table, DeliveryEvent._meta.db_table)


def queries_for(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_overview_and_server_detail_never_read_message_rows(operator_client, world):
    urls = [
        reverse("dashboard:overview"),
        reverse("dashboard:stats-partial"),
        reverse("dashboard:daily-chart-partial"),
        reverse("dashboard:recommendations-partial"),
        reverse("dashboard:alerts-partial"),
        reverse("dashboard:servers"),
        reverse("dashboard:server-rows"),
        reverse("dashboard:server-detail", args=[world.servers[0].pk]),
        reverse("dashboard:server-form", args=[world.servers[0].pk]),
    ]
    for url in urls:
        for sql in queries_for(operator_client, url):
            assert not any(f'"{table}"' in sql for table in RAW_TABLES), f"{url} reads raw rows: {sql[:200]}"


def test_the_query_count_does_not_grow_with_the_data(operator_client, world):
    from servers.models import Alert, HealthCheck, ServerDailyStat

    url_overview = reverse("dashboard:overview")
    url_detail = reverse("dashboard:server-detail", args=[world.servers[0].pk])
    before = (len(queries_for(operator_client, url_overview)), len(queries_for(operator_client, url_detail)))
    server = world.servers[1]
    for n in range(40):
        HealthCheck.objects.create(server=server, ok=bool(n % 2), latency_ms=3.0)
        Alert.objects.create(level="info", kind="server_up", server=server, message=f"up {n}")
    ServerDailyStat.objects.filter(server=world.servers[0]).update(sent=10_000_000)
    after = (len(queries_for(operator_client, url_overview)), len(queries_for(operator_client, url_detail)))
    assert after == before


def test_the_overview_cards_agree_with_get_statistics(world):
    from dashboard.selectors import overview
    from servers.models import ServerDailyStat
    from servers.statistics import get_statistics

    ServerDailyStat.objects.filter(server=world.servers[0]).update(returned=2)
    cards = overview()
    found = get_statistics()["global"]
    assert (cards.servers_total, cards.servers_active, cards.ips) == (
        found["totalServers"],
        found["activeServers"],
        found["totalIPs"],
    )
    assert (cards.sent, cards.delivered, cards.failed) == (
        found["totalSent"],
        found["totalDelivered"],
        found["totalFailed"],
    )
    assert cards.average_reputation == found["averageReputation"]
    assert cards.delivered == cards.sent - 2 * 14
