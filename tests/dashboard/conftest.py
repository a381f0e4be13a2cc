"""Fixtures for the dashboard tests: a pool with some history, alerts, a list and a campaign."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from campaigns.models import Campaign, ImportJob, ImportRowError, Prospect, ProspectList, Suppression
from servers.configuration import load_preset
from servers.daytime import sending_day
from servers.models import (
    Alert,
    BlocklistCheck,
    HealthCheck,
    Quota,
    Server,
    ServerDailyStat,
    ServerKind,
    ServerState,
)


@dataclass
class World:
    servers: list[Server]
    alert: Alert
    prospect_list: ProspectList
    campaign: Campaign
    job: ImportJob


def make_pool() -> list[Server]:
    """The professional preset with three of its five slots given (loopback) credentials."""
    load_preset("professional")
    servers = list(Server.objects.filter(kind=ServerKind.SMTP, in_pool=True).order_by("slot"))
    for n, server in enumerate(servers[:3], start=1):
        server.host = "127.0.0.1"
        server.port = 9  # nothing listens there: a probe fails fast
        server.security = "none"
        server.ip_address = f"127.0.0.{10 + n}"
        server.state = ServerState.ACTIVE
        server.save()
    return servers


@pytest.fixture
def world(db) -> World:
    servers = make_pool()
    today = sending_day()
    first = servers[0]
    Quota.objects.update_or_create(server=first, day=today, defaults={"cap": 50, "used": 20})
    for days_ago in range(14):
        ServerDailyStat.objects.create(
            server=first,
            day=today - dt.timedelta(days=days_ago),
            sent=100 + days_ago,
            delivered=90,
            deferred=4,
            bounced=3,
            failed=1,
            reputation=92.5,
        )
    HealthCheck.objects.create(
        server=first, ok=False, stage="connect", error="connection refused on 127.0.0.1:9", latency_ms=1.5
    )
    BlocklistCheck.objects.create(
        server=first,
        ip_address="127.0.0.11",
        zone="zen.spamhaus.org",
        status="listed",
        codes=["127.0.0.2"],
        reason="Listed for spam sources",
    )
    alert = Alert.objects.create(
        level=Alert.Level.CRITICAL,
        kind="server_down",
        server=first,
        message="SMTP Server 1 is down: connection refused",
    )
    Alert.objects.create(level=Alert.Level.INFO, kind="server_up", server=first, message="SMTP Server 1 is up again")
    plist = ProspectList.objects.create(name="Spring leads", prospect_count=2)
    Prospect.objects.create(prospect_list=plist, email="ana@example.es", name="Ana", company="Acme")
    Prospect.objects.create(prospect_list=plist, email="bob@example.com", name="Bob", company="Bobco")
    campaign = Campaign.objects.create(
        name="Spring launch",
        prospect_list=plist,
        from_name="Sales",
        from_email="sales@example.com",
        subject="Hello {{ name }}",
        html_body="<p>Hi {{ name }} from {{ company }}</p>",
        text_body="Hi {{ name }} from {{ company }}",
    )
    job = ImportJob.objects.create(
        prospect_list=plist,
        filename="leads.csv",
        status=ImportJob.Status.DONE,
        total_bytes=100,
        bytes_read=100,
        rows_total=3,
        rows_imported=2,
        rows_invalid=1,
    )
    ImportRowError.objects.create(
        job=job, line=3, reason="'not-an-email' is not an email address", raw="not-an-email,Zed"
    )
    Suppression.objects.create(email="gone@example.org", reason=Suppression.Reason.HARD_BOUNCE, source="smtp 550 5.1.1")
    return World(servers=servers, alert=alert, prospect_list=plist, campaign=campaign, job=job)
