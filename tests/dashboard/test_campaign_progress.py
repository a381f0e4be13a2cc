"""The campaign progress partial (and the campaign page around it): the counters, where the mail
went server by server, and when the rest should be through, as rendered numbers and text."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, Message, MessageStatus
from servers.models import ServerState
from tests.support.monitoring import make_server
from tests.support.pipeline import campaign, prospect_list

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def clock():
    """Each test sets up a few minutes before NOW, on a running clock; pages are fetched at NOW."""
    with time_machine.travel(NOW - dt.timedelta(minutes=5), tick=True):
        yield


def text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def by_id(body: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', body, re.S)
    assert match, f"no #{element_id}"
    return text(match.group(2))


def caption(body: str) -> str:
    match = re.search(r'<p class="bar-caption">(.*?)</p>', body, re.S)
    assert match
    return text(match.group(1))


def per_server_rows(body: str) -> list[list[str]]:
    """The cells of the "Per server" table, row by row."""
    match = re.search(r"<h3>Per server</h3>.*?<tbody>(.*?)</tbody>", body, re.S)
    assert match, "no per-server table"
    return [[text(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", match.group(1), re.S)]


def fetch(client, name: str, pk: int) -> str:
    # Rendered with the clock standing still, so "now" in the estimate is exactly NOW.
    with time_machine.travel(NOW, tick=False):
        response = client.get(reverse(name, args=[pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_progress_shows_each_servers_share_and_a_finish_days_ahead_when_todays_quota_is_spent(operator_client):
    small = make_server(1, daily_limit=10)
    large = make_server(2, daily_limit=20)
    spring = services.campaign_start(campaign=campaign(prospect_list(100)))
    report = dispatch.run_once()
    assert report.claimed == {small.pk: 10, large.pk: 20}
    # The batches' outcomes: 26 sent, 2 deferred for later, 1 hard bounce, 1 failure.
    outcomes = {small.pk: [MessageStatus.SENT] * 7 + [MessageStatus.DEFERRED] * 2 + [MessageStatus.BOUNCED],
                large.pk: [MessageStatus.SENT] * 19 + [MessageStatus.FAILED]}
    for server_id, statuses in outcomes.items():
        ids = Message.objects.filter(server_id=server_id).order_by("pk").values_list("pk", flat=True)
        for pk, status in zip(ids, statuses, strict=True):
            Message.objects.filter(pk=pk).update(status=status, lease_expires_at=None,
                                                 next_attempt_at=NOW + dt.timedelta(hours=1))
    Campaign.objects.filter(pk=spring.pk).update(sent=26, deferred=2, bounced=1, failed=1)

    body = fetch(operator_client, "dashboard:campaign-progress", spring.pk)

    # 70 never tried and the 2 waiting for a retry are left: 28 of 100 are through.
    assert by_id(body, "count-sent") == "26" and by_id(body, "count-remaining") == "72"
    assert 'id="campaign-bar" max="100" value="28"' in body and by_id(body, "campaign-percent") == "28%"
    assert per_server_rows(body) == [
        # server, messages, share of the campaign, sent, deferred, bounced; the busiest first
        ["SMTP Server 2", "20", "20%", "19", "0", "0"],
        ["SMTP Server 1", "10", "10%", "7", "2", "1"],
    ]
    for server in (small, large):
        assert f'href="{reverse("dashboard:server-detail", args=[server.pk])}"' in body
    # Both quotas are used up today; at 30 a day the 72 left take three more days.
    assert caption(body) == "28% · estimated finish 03/13/2026 midnight"

    page = fetch(operator_client, "dashboard:campaign-detail", spring.pk)
    assert per_server_rows(page) == per_server_rows(body)
    assert caption(page) == caption(body)


def test_a_finish_within_todays_quota_is_paced_by_the_servers_delays(operator_client):
    make_server(1, daily_limit=500, min_delay_seconds=10)
    make_server(2, daily_limit=500, min_delay_seconds=20)
    spring = services.campaign_start(campaign=campaign(prospect_list(90)))

    body = fetch(operator_client, "dashboard:campaign-progress", spring.pk)

    # 90 messages at one every 10 s plus one every 20 s (0.15 a second): 600 s from noon.
    assert caption(body) == "0% · estimated finish 03/10/2026 12:10 p.m."
    assert by_id(body, "count-remaining") == "90"
    assert "Per server" not in body  # nothing has been given to a server yet


def test_with_no_server_able_to_send_there_is_no_estimate_but_a_reason(operator_client):
    make_server(1, state=ServerState.DOWN)
    make_server(2, state=ServerState.PAUSED_BLOCKLISTED)
    spring = services.campaign_start(campaign=campaign(prospect_list(5)))

    body = fetch(operator_client, "dashboard:campaign-progress", spring.pk)

    assert caption(body) == "0% · no capacity left in the pool: it waits for servers or tomorrow's quota"
    assert "estimated finish" not in body


def test_a_finished_campaign_shows_its_distribution_and_no_estimate(operator_client):
    one = make_server(1)
    spring = services.campaign_start(campaign=campaign(prospect_list(4)))
    dispatch.run_once()
    Message.objects.filter(campaign=spring).update(status=MessageStatus.SENT, lease_expires_at=None)
    Campaign.objects.filter(pk=spring.pk).update(sent=4, status=Campaign.Status.DONE, finished_at=timezone.now())

    body = fetch(operator_client, "dashboard:campaign-progress", spring.pk)

    assert per_server_rows(body) == [[one.name, "4", "100%", "4", "0", "0"]]
    assert caption(body) == "100%"
    assert 'hx-trigger="poll"' not in body  # no longer polled
