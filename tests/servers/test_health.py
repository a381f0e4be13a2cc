from __future__ import annotations

import datetime as dt
import email
import email.policy
import io

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core.management import call_command

from servers import alerts, health
from servers.models import Alert, HealthCheck, ServerDailyStat, ServerKind, ServerState
from servers.signals import health_check_failed
from tests.support.monitoring import admin_inbox, make_configuration, make_relay_server, make_server
from tests.support.relays import quick_smtp_timeouts, relay, relay_factory  # noqa: F401
from tests.support.sendgrid_server import DEFAULT_KEY, sendgrid_api  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

START = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
INTERVAL = dt.timedelta(seconds=300)


@pytest.fixture(autouse=True)
def short_timeouts(settings):
    quick_smtp_timeouts(settings, 2.0)


def subjects(inbox) -> list[str]:
    return [str(email.message_from_bytes(m.data, policy=email.policy.default)["Subject"]) for m in inbox.messages]


def test_a_relay_stopped_mid_test_goes_down_after_n_sweeps_mails_once_and_comes_back_up(settings, relay_factory):
    pool = relay_factory(name="pool")
    inbox = relay_factory(name="admin-inbox")
    with time_machine.travel(START, tick=False) as clock:
        admin_inbox(settings, inbox, interval=900)
        make_configuration(health_check_interval_seconds=300, health_failures_to_down=2)
        server = make_relay_server(1, pool)

        [first] = health.sweep()
        assert first.check.ok
        assert first.check.stage == ""
        assert first.check.latency_ms is not None

        pool.set_down(True)
        clock.shift(INTERVAL)
        [second] = health.sweep()
        server.refresh_from_db()
        assert not second.check.ok
        assert second.check.stage == "connect"
        assert second.check.error
        assert server.state == ServerState.ACTIVE
        assert server.consecutive_health_failures == 1
        assert inbox.messages == []

        clock.shift(INTERVAL)
        [third] = health.sweep()
        server.refresh_from_db()
        assert third.transition == "down"
        assert server.state == ServerState.DOWN
        assert "2 health checks failed in a row" in server.state_reason
        assert len(inbox.wait_for(1)) == 1

        clock.shift(INTERVAL)
        [fourth] = health.sweep()
        assert fourth.transition == ""
        assert len(inbox.messages) == 1

        pool.set_down(False)
        clock.shift(dt.timedelta(seconds=901))
        [fifth] = health.sweep()
        server.refresh_from_db()
        assert fifth.transition == "up"
        assert server.state == ServerState.ACTIVE
        assert server.consecutive_health_failures == 0

    inbox.wait_for(2)
    down_mail, up_mail = subjects(inbox)
    assert down_mail.startswith(
        "[mailops] CRITICAL: SMTP Server 1 is down and out of rotation: 2 health checks failed in a row; last: connect"
    )
    assert up_mail == "[mailops] INFO: SMTP Server 1 is up again and back in rotation."
    body = email.message_from_bytes(inbox.messages[0].data, policy=email.policy.default).get_content()
    assert third.check.error in body
    assert list(HealthCheck.objects.order_by("checked_at").values_list("ok", flat=True)) == [
        True, False, False, False, True
    ]
    day = ServerDailyStat.objects.get(server=server)
    assert (day.health_checks, day.health_failures) == (5, 3)
    # One row per failure while active, then one for the whole down period.
    assert Alert.objects.filter(kind=alerts.HEALTH_CHECK_FAILED).count() == 2


def test_every_failed_probe_sends_health_check_failed_with_server_error_and_stage(relay_factory):
    pool = relay_factory(name="pool")
    pool.set_down(True)
    make_configuration()
    server = make_relay_server(1, pool)
    received = []

    def listener(sender, **kwargs):
        received.append(kwargs)

    health_check_failed.connect(listener)
    try:
        health.check_server(server)
    finally:
        health_check_failed.disconnect(listener)

    [event] = received
    assert event["server"] == server
    assert event["stage"] == "connect"
    assert event["error"] == HealthCheck.objects.get().error


def test_a_failed_login_is_recorded_at_the_auth_stage(relay_factory):
    pool = relay_factory(name="pool", security="starttls", username="mailops", password="right")
    make_configuration()
    server = make_relay_server(1, pool, username="mailops", password="wrong")

    check = health.check_server(server)

    assert not check.ok
    assert check.stage == "auth"
    assert "535" in check.error


def test_a_good_login_over_starttls_is_healthy(relay_factory):
    pool = relay_factory(name="pool", security="starttls", username="mailops", password="right")
    make_configuration()
    server = make_relay_server(1, pool, username="mailops", password="right")

    assert health.check_server(server).ok
    assert pool.counters["connections"] >= 1


def test_one_success_brings_a_down_server_back(relay):
    make_configuration()
    server = make_relay_server(1, relay, state=ServerState.DOWN, consecutive_health_failures=7)

    [outcome] = health.sweep()

    server.refresh_from_db()
    assert outcome.transition == "up"
    assert server.state == ServerState.ACTIVE
    assert server.last_health_ok is True


def test_the_failure_threshold_comes_from_the_configuration(relay_factory):
    pool = relay_factory(name="pool")
    pool.set_down(True)
    make_configuration(health_failures_to_down=3)
    server = make_relay_server(1, pool)

    for _ in range(2):
        health.sweep(force=True)
        server.refresh_from_db()
        assert server.state == ServerState.ACTIVE
    health.sweep(force=True)

    server.refresh_from_db()
    assert server.state == ServerState.DOWN


def test_a_server_is_probed_again_only_after_the_configured_interval(relay):
    with time_machine.travel(START, tick=False) as clock:
        make_configuration(health_check_interval_seconds=600)
        make_relay_server(1, relay)

        assert len(health.sweep()) == 1
        clock.shift(dt.timedelta(seconds=300))
        assert health.sweep() == []
        clock.shift(dt.timedelta(seconds=300))
        assert len(health.sweep()) == 1


def test_overlapping_sweeps_never_probe_the_same_server_twice(relay):
    make_configuration()
    server = make_relay_server(1, relay)
    stale_view = health.due_servers()

    assert health.claim(stale_view, now=START) == [server]
    assert health.claim(stale_view, now=START) == []


def test_paused_manual_unconfigured_and_out_of_pool_servers_are_not_probed_but_blocklisted_ones_are(relay):
    make_configuration()
    active = make_relay_server(1, relay)
    make_relay_server(2, relay, state=ServerState.PAUSED_MANUAL)
    make_server(3, host="", state=ServerState.UNCONFIGURED)
    make_relay_server(4, relay, in_pool=False)
    listed = make_relay_server(5, relay, state=ServerState.PAUSED_BLOCKLISTED)

    outcomes = health.sweep()

    assert [o.server for o in outcomes] == [active, listed]
    listed.refresh_from_db()
    assert listed.state == ServerState.PAUSED_BLOCKLISTED


def test_a_blocklisted_server_that_fails_probes_keeps_its_paused_state(relay_factory):
    pool = relay_factory(name="pool")
    pool.set_down(True)
    make_configuration(health_failures_to_down=1)
    server = make_relay_server(1, pool, state=ServerState.PAUSED_BLOCKLISTED)

    [outcome] = health.sweep()

    server.refresh_from_db()
    assert not outcome.check.ok
    assert outcome.transition == ""
    assert server.state == ServerState.PAUSED_BLOCKLISTED
    assert server.consecutive_health_failures == 1


def test_a_sweep_probes_every_server_and_only_the_stopped_one_fails(relay_factory):
    relays = [relay_factory(name=f"pool-{n}") for n in range(1, 5)]
    relays[2].set_down(True)
    make_configuration(health_failures_to_down=1)
    servers = [make_relay_server(n, r) for n, r in enumerate(relays, start=1)]

    outcomes = health.sweep()

    assert {o.server.name: o.check.ok for o in outcomes} == {
        "SMTP Server 1": True, "SMTP Server 2": True, "SMTP Server 3": False, "SMTP Server 4": True
    }
    states = {s.name: s.state for s in type(servers[0]).objects.all()}
    assert states["SMTP Server 3"] == ServerState.DOWN
    assert states["SMTP Server 1"] == ServerState.ACTIVE


def test_a_sendgrid_server_is_probed_with_an_authenticated_api_call(settings, sendgrid_api):
    settings.MAILOPS = {**settings.MAILOPS, "SENDGRID_API_HOST": sendgrid_api.url}
    make_configuration()
    good = make_server(1, kind=ServerKind.SENDGRID, name="SendGrid", api_key=DEFAULT_KEY, host="", ip_address=None)

    assert health.check_server(good).ok
    assert sendgrid_api.requests[-1].path == "/v3/scopes"
    assert sendgrid_api.requests[-1].headers["Authorization"] == f"Bearer {DEFAULT_KEY}"

    good.api_key = "SG.revoked"
    good.save()
    check = health.check_server(good)
    assert not check.ok
    assert check.stage == "auth"


def test_the_healthcheck_command_prints_a_table(relay_factory):
    up = relay_factory(name="up")
    down = relay_factory(name="down")
    down.set_down(True)
    make_configuration()
    make_relay_server(1, up)
    make_relay_server(2, down)
    out = io.StringIO()

    call_command("healthcheck", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["server", "state", "ok", "stage", "latency", "error"]
    assert lines[1].startswith("SMTP Server 1")
    assert lines[1].split()[3:5] == ["active", "yes"]
    assert lines[2].split()[3:6] == ["active", "NO", "connect"]


def test_the_health_task_runs_one_sweep_of_the_due_servers(relay):
    from servers import tasks

    make_configuration()
    make_relay_server(1, relay)

    assert tasks.health_sweep() == {"checked": 1, "failed": 0, "down": 0, "up": 0}
    assert tasks.health_sweep()["checked"] == 0


def test_every_monitoring_task_is_registered_and_scheduled_by_beat():
    from mailops.celery import app
    from servers import tasks

    app.loader.import_default_modules()
    for entry in tasks.BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks
        assert entry["task"] in {e["task"] for e in django_settings.CELERY_BEAT_SCHEDULE.values()}
