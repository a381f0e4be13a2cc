from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Campaign, Message, MessageStatus, ProspectList
from servers import quota
from servers.models import Alert, Server, ServerDailyStat, ServerKind, ServerState, WarmupSchedule

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-0123456789"
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+]+|NaN)$')


@pytest.fixture(autouse=True)
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client, token: str | None = TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def make_server(slot: int, name: str | None = None, **fields) -> Server:
    defaults = {"kind": ServerKind.SMTP, "host": "127.0.0.1", "state": ServerState.ACTIVE, "warmup_enabled": False}
    return Server.objects.create(slot=slot, name=name or f"SMTP Server {slot}", **{**defaults, **fields})


def test_without_the_token_or_a_session_it_asks_for_a_bearer_token(client):
    for response in (scrape(client, None), scrape(client, "wrong-token"), client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}")):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_with_no_token_configured_only_a_session_gets_in(viewer_client, settings):
    settings.METRICS_TOKEN = ""
    anonymous = Client()
    assert scrape(anonymous, "").status_code == 401
    assert scrape(anonymous, "anything").status_code == 401
    assert viewer_client.get("/metrics").status_code == 200


def test_a_scrape_reports_the_pool_from_its_aggregates(client):
    one = make_server(1, reputation=97.5)
    two = make_server(2, state=ServerState.DOWN, reputation=61.0)
    ServerDailyStat.objects.create(server=one, day=dt.date(2025, 5, 1), sent=100, bounced=3)
    ServerDailyStat.objects.create(server=one, day=dt.date(2025, 5, 2), sent=20, deferred=4)
    quota.reserve(one, 42)
    prospect_list = ProspectList.objects.create(name="L")
    Campaign.objects.create(name="C", prospect_list=prospect_list, from_email="a@example.com", subject="s", status="running", total=10, sent=6, bounced=1)
    now = timezone.now()
    Message.objects.bulk_create(
        [
            Message(to_email="a@example.com", status=MessageStatus.QUEUED, next_attempt_at=now - dt.timedelta(minutes=1)),
            Message(to_email="b@example.com", status=MessageStatus.QUEUED, next_attempt_at=now - dt.timedelta(minutes=1)),
            Message(to_email="c@example.com", status=MessageStatus.DEFERRED, next_attempt_at=now + dt.timedelta(hours=1)),
            Message(to_email="d@example.com", status=MessageStatus.SENDING),
            Message(to_email="e@example.com", status=MessageStatus.SENT),
        ]
    )
    Alert.objects.create(level="critical", kind="server_down", server=two, message="down")

    response = scrape(client)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.content.decode()
    bad = [line for line in text.splitlines() if line and not line.startswith("#") and not SAMPLE.match(line)]
    assert not bad
    got = samples(text)
    s1 = 'server="SMTP Server 1",kind="smtp"'
    s2 = 'server="SMTP Server 2",kind="smtp"'
    assert got[f"mailops_server_messages_total{{{s1},outcome=\"sent\"}}"] == 120
    assert got[f"mailops_server_messages_total{{{s1},outcome=\"bounced\"}}"] == 3
    assert got[f"mailops_server_messages_total{{{s2},outcome=\"sent\"}}"] == 0
    assert got[f"mailops_quota_used{{{s1}}}"] == 42 and got[f"mailops_quota_cap{{{s1}}}"] == 500
    assert got[f"mailops_server_up{{{s1}}}"] == 1 and got[f"mailops_server_up{{{s2}}}"] == 0
    assert got[f"mailops_server_state{{{s2},state=\"down\"}}"] == 1
    assert got[f"mailops_server_reputation{{{s2}}}"] == 61
    assert got['mailops_queue_depth{status="queued",due="now"}'] == 2
    assert got['mailops_queue_depth{status="deferred",due="later"}'] == 1
    assert got["mailops_messages_in_flight"] == 1
    assert got['mailops_campaign_messages_total{status="sent"}'] == 6
    assert got['mailops_campaigns{status="running"}'] == 1
    assert got['mailops_alerts_unacknowledged{level="critical"}'] == 1


def test_label_values_are_escaped(client):
    make_server(1, name='Relay "A" \\ west')
    text = scrape(client).content.decode()
    assert 'mailops_server_up{server="Relay \\"A\\" \\\\ west",kind="smtp"} 1' in text


def test_a_scrape_costs_the_same_number_of_queries_for_3_or_30_servers(client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert scrape(client).status_code == 200
        return len(captured)

    schedule = WarmupSchedule.objects.get(key="default-6-day")
    for slot in range(1, 4):
        make_server(slot, warmup_enabled=True, warmup_schedule=schedule)
    few = queries()
    for slot in range(4, 31):
        make_server(slot, warmup_enabled=True, warmup_schedule=schedule)
    assert queries() == few
