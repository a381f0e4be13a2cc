from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine

from servers import configuration, quota, services
from servers.daytime import sending_day
from servers.models import Quota, Server, ServerKind, ServerState

pytestmark = pytest.mark.django_db
MEXICO = zoneinfo.ZoneInfo("America/Mexico_City")


@pytest.fixture
def server(settings, smtp_env):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    smtp_env([2601])
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=MEXICO), tick=False):
        configuration.load_preset("starter")
    return Server.objects.get(kind=ServerKind.SMTP, slot=1)


def test_day_one_cap_is_50(server):
    with time_machine.travel(dt.datetime(2026, 12, 1, 23, 59, tzinfo=MEXICO), tick=False):
        assert server.warmup_day() == 1
        assert server.cap_for() == 50


def test_the_day_turns_at_midnight_in_the_configured_zone_not_utc(server):
    # 05:59 UTC on Dec 2 is still Dec 1 in Mexico City (UTC-6).
    with time_machine.travel(dt.datetime(2026, 12, 2, 5, 59, tzinfo=dt.UTC), tick=False):
        assert sending_day() == dt.date(2026, 12, 1)
        assert server.warmup_day() == 1
    with time_machine.travel(dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC), tick=False):
        assert sending_day() == dt.date(2026, 12, 2)
        assert server.warmup_day() == 2
        assert server.cap_for() == 100


def test_schedule_reaches_the_full_limit_on_day_six_and_stays(server):
    expected = {1: 50, 2: 100, 3: 200, 4: 300, 5: 400, 6: 500, 7: 500, 30: 500}
    for day, cap in expected.items():
        moment = dt.datetime(2026, 12, 1, 12, 0, tzinfo=MEXICO) + dt.timedelta(days=day - 1)
        with time_machine.travel(moment, tick=False):
            assert (server.warmup_day(), server.cap_for()) == (day, cap)
            assert server.in_warmup() is (day < 6)


def test_manual_advance_moves_the_day_and_today_quota(server):
    with time_machine.travel(dt.datetime(2026, 12, 1, 12, 0, tzinfo=MEXICO), tick=False):
        quota.sync_cap(server)
        configuration.advance_warmup_day(server)
        configuration.advance_warmup_day("SMTP Server 1")
        server.refresh_from_db()
        assert server.warmup_day() == 3
        assert Quota.objects.get(server=server, day=dt.date(2026, 12, 1)).cap == 200


def test_a_missed_or_doubled_job_cannot_skew_the_day(server):
    from campaigns import dispatch
    from servers import reputation

    # The periodic jobs that touch a server (the dispatcher, which sets today's caps, and the
    # reputation sweep) run once on day 1, not at all on days 2 and 3, and three times on
    # day 4. A day counted by a job would read 2 (missed) or 4 + 2 (doubled) there.
    runs_per_day = {1: 1, 2: 0, 3: 0, 4: 3}
    for day, runs in runs_per_day.items():
        with time_machine.travel(dt.datetime(2026, 12, day, 12, 0, tzinfo=MEXICO), tick=False):
            for _ in range(runs):
                assert dispatch.run_once().ran
                reputation.recompute()
            server.refresh_from_db()
            assert (server.warmup_day(), server.cap_for()) == (day, {1: 50, 2: 100, 3: 200, 4: 300}[day])
    caps = dict(Quota.objects.filter(server=server).values_list("day", "cap"))
    assert caps == {dt.date(2026, 12, 1): 50, dt.date(2026, 12, 4): 300}
    assert (server.warmup_started_on, server.warmup_manual_advance) == (dt.date(2026, 12, 1), 0)


def test_reloading_a_preset_does_not_restart_warmup(server):
    with time_machine.travel(dt.datetime(2026, 12, 5, 12, 0, tzinfo=MEXICO), tick=False):
        configuration.load_preset("professional")
        server.refresh_from_db()
        assert server.warmup_day() == 5
        new = Server.objects.get(kind=ServerKind.SMTP, slot=2)
        assert new.warmup_day() == 1


def test_ultra_secure_caps_follow_the_ten_day_schedule(settings, smtp_env):
    smtp_env([2601])
    configuration.load_preset("ultra-secure")
    server = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    assert server.cap_for() == 10  # 5% of 200 on day 1
    assert server.min_delay_seconds == 2


# --- a new IP starts its warm-up again ------------------------------------------------------

NINETEEN_DAYS_LATER = dt.datetime(2026, 12, 20, 12, 0, tzinfo=MEXICO)


@pytest.fixture
def unconfigured(settings):
    """Slot 1 of the starter preset, loaded on Dec 1 without credentials."""
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=MEXICO), tick=False):
        configuration.load_preset("starter")
    slot = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    assert slot.state == ServerState.UNCONFIGURED
    return slot


def assert_first_day(server: Server, day: dt.date) -> None:
    server.refresh_from_db()
    assert server.warmup_started_on == day
    assert server.warmup_manual_advance == 0
    assert server.warmup_day(day) == 1
    assert Quota.objects.get(server=server, day=day).cap == 50


def test_a_slot_given_credentials_weeks_after_it_was_created_starts_at_day_one(unconfigured, smtp_env):
    smtp_env([2601])
    with time_machine.travel(NINETEEN_DAYS_LATER, tick=False):
        configuration.load_preset("starter")
    assert_first_day(unconfigured, dt.date(2026, 12, 20))
    assert unconfigured.state == ServerState.ACTIVE


def test_a_slot_given_a_host_through_the_api_starts_at_day_one(unconfigured, operator_api):
    with time_machine.travel(NINETEEN_DAYS_LATER, tick=False):
        body = operator_api.patch(f"/api/servers/{unconfigured.pk}/", {"host": "smtp1.example.net"}, format="json").json()
    assert (body["state"], body["warmupDay"], body["capToday"]) == ("active", 1, 50)
    assert_first_day(unconfigured, dt.date(2026, 12, 20))


def test_a_new_egress_ip_restarts_warm_up_and_forgets_manual_advances(server):
    with time_machine.travel(dt.datetime(2026, 12, 4, 12, 0, tzinfo=MEXICO), tick=False):
        configuration.advance_warmup_day(server)
        server.refresh_from_db()
        assert server.warmup_day() == 5
        services.server_update(server=server, ip_address="203.0.113.99")
    assert_first_day(server, dt.date(2026, 12, 4))


def test_a_new_host_restarts_warm_up_from_the_dashboard(server, operator_client):
    from django.urls import reverse

    data = {"name": server.name, "host": "relay-b.example.net", "port": "2601", "security": "none",
            "ip_address": "127.0.0.11", "priority": "1", "daily_limit": "500", "min_delay_seconds": "0",
            "warmup_enabled": "on"}
    with time_machine.travel(dt.datetime(2026, 12, 10, 12, 0, tzinfo=MEXICO), tick=False):
        response = operator_client.post(reverse("dashboard:server-edit", args=[server.pk]), data)
    assert response.status_code == 302
    assert_first_day(server, dt.date(2026, 12, 10))


def test_a_new_host_restarts_warm_up_from_the_admin(server, admin_client):
    url = f"/admin/servers/server/{server.pk}/change/"
    with time_machine.travel(dt.datetime(2026, 12, 10, 12, 0, tzinfo=MEXICO), tick=False):
        form = admin_client.get(url).context["adminform"].form
        data = {**admin_form_data(form), "host": "relay-b.example.net"}
        response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert_first_day(server, dt.date(2026, 12, 10))


def admin_form_data(form) -> dict[str, str]:
    """What the browser would post back for an unchanged admin form."""
    data: dict[str, str] = {}
    for bound in form:
        widget = bound.field.widget
        value = bound.value()
        if hasattr(widget, "widgets"):
            parts = widget.decompress(value) if not isinstance(value, list) else value
            for suffix, part in zip(widget.widgets_names, parts):
                data[bound.html_name + suffix] = "" if part is None else str(part)
        elif isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
        elif value is not None:
            data[bound.html_name] = str(value)
    return data


def test_the_new_start_is_the_sending_day_in_the_configured_zone(server):
    # 03:00 UTC on Dec 20 is still Dec 19 in Mexico City.
    with time_machine.travel(dt.datetime(2026, 12, 20, 3, 0, tzinfo=dt.UTC), tick=False):
        services.server_update(server=server, host="relay-b.example.net")
    assert_first_day(server, dt.date(2026, 12, 19))


def test_edits_that_keep_the_host_and_ip_keep_the_warm_up_progress(server):
    with time_machine.travel(dt.datetime(2026, 12, 4, 12, 0, tzinfo=MEXICO), tick=False):
        configuration.advance_warmup_day(server)
        services.server_update(server=server, name="Relay Madrid", daily_limit=400, host=server.host.upper() + ".",
                               ip_address=server.ip_address)
        server.refresh_from_db()
        assert (server.warmup_started_on, server.warmup_manual_advance) == (dt.date(2026, 12, 1), 1)
        assert server.warmup_day() == 5


def test_a_start_date_given_with_the_new_ip_is_kept(server):
    # The operator knows this IP: it was warmed up elsewhere since Nov 20.
    with time_machine.travel(dt.datetime(2026, 12, 4, 12, 0, tzinfo=MEXICO), tick=False):
        services.server_update(server=server, ip_address="203.0.113.99", warmup_started_on=dt.date(2026, 11, 20))
        server.refresh_from_db()
        assert server.warmup_started_on == dt.date(2026, 11, 20)
        assert server.warmup_day() == 15
