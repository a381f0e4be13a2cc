from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.utils import timezone

from servers import alerts, state
from servers.models import Alert
from servers.signals import health_check_failed, server_down
from tests.support.monitoring import admin_inbox, make_relay_server, make_server
from tests.support.relays import relay, relay_factory  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def subjects(inbox) -> list[str]:
    return [str(email.message_from_bytes(m.data, policy=email.policy.default)["Subject"]) for m in inbox.messages]


def test_a_server_going_down_adds_an_alert_row_and_mails_the_admins_once(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    server = make_server(1)

    assert state.mark_down(server, error="connect failed: Connection refused")

    alert = Alert.objects.get()
    assert alert.kind == alerts.SERVER_DOWN
    assert alert.level == Alert.Level.CRITICAL
    assert alert.server == server
    assert "Connection refused" in alert.message
    assert alert.emailed_at is not None
    [mail] = inbox.wait_for(1)
    assert mail.rcpt_tos == ("ops@mailops.test",)
    assert subjects(inbox) == ["[mailops] CRITICAL: SMTP Server 1 is down and out of rotation: connect failed: Connection refused"]


def test_the_same_state_change_signalled_twice_is_one_alert_and_one_mail(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    server = make_server(1)
    state.mark_down(server, error="timeout")

    server_down.send(sender=type(server), server=server, error="timeout")

    assert Alert.objects.count() == 1
    assert len(inbox.wait_for(1)) == 1


def test_alert_mail_goes_through_the_alert_relay_and_never_a_pool_server(settings, relay_factory):
    pool_relay = relay_factory(name="pool")
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    server = make_relay_server(1, pool_relay)

    state.mark_down(server, error="probe failed")

    assert len(inbox.wait_for(1)) == 1
    assert pool_relay.messages == []
    assert pool_relay.counters["connections"] == 0


def test_a_flapping_server_gets_one_mail_and_the_rest_wait_for_the_digest(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox, interval=900)
    server = make_server(1)

    for _ in range(3):
        state.mark_down(server, error="connect failed")
        state.mark_up(server)

    assert Alert.objects.count() == 6
    assert Alert.objects.exclude(emailed_at=None).count() == 1
    assert len(inbox.wait_for(1)) == 1

    assert alerts.send_digest() == 5

    inbox.wait_for(2)
    assert len(inbox.messages) == 2
    digest = email.message_from_bytes(inbox.messages[1].data)
    assert digest["Subject"] == "[mailops] digest: 5 alerts"
    body = digest.get_payload(decode=True).decode()
    assert "3 × server_up on SMTP Server 1" in body
    assert "2 × server_down on SMTP Server 1" in body
    assert Alert.objects.filter(emailed_at=None, digested_at=None).count() == 0


def test_a_second_digest_with_nothing_new_sends_nothing(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    server = make_server(1)
    health_check_failed.send(sender=type(server), server=server, error="timeout", stage="connect")
    assert alerts.send_digest() == 1

    assert alerts.send_digest() == 0

    assert len(inbox.wait_for(1)) == 1


def test_the_rate_limit_is_per_server(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox, interval=900)
    first, second = make_server(1), make_server(2)

    state.mark_down(first, error="refused")
    state.mark_down(second, error="refused")

    assert len(inbox.wait_for(2)) == 2


def test_after_the_interval_the_next_state_change_is_mailed_again(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox, interval=900)
    server = make_server(1)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        state.mark_down(server, error="refused")
        clock.shift(dt.timedelta(seconds=901))
        state.mark_up(server)

    assert len(inbox.wait_for(2)) == 2
    assert subjects(inbox)[1] == "[mailops] INFO: SMTP Server 1 is up again and back in rotation."


def test_health_check_failures_are_recorded_but_only_mailed_in_the_digest(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    server = make_server(1)

    health_check_failed.send(sender=type(server), server=server, error="connect failed", stage="connect")

    alert = Alert.objects.get()
    assert alert.kind == alerts.HEALTH_CHECK_FAILED
    assert alert.message == "Health check of SMTP Server 1 failed at connect: connect failed"
    assert alert.emailed_at is None
    assert inbox.messages == []


def test_an_alert_mail_that_fails_is_sent_by_the_next_digest(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    inbox.set_down(True)
    server = make_server(1)

    state.mark_down(server, error="refused")

    alert = Alert.objects.get()
    assert alert.emailed_at is None
    inbox.set_down(False)
    assert alerts.send_digest() == 1
    assert len(inbox.wait_for(1)) == 1


def test_without_admins_alerts_are_recorded_and_nothing_is_mailed(settings, relay_factory):
    inbox = relay_factory(name="admin-inbox")
    admin_inbox(settings, inbox)
    settings.ADMINS = []
    server = make_server(1)

    state.mark_down(server, error="refused")

    assert Alert.objects.count() == 1
    assert alerts.send_digest() == 0
    assert inbox.counters["connections"] == 0


def test_acknowledging_records_who_and_when_and_the_first_one_wins():
    server = make_server(1)
    alert = alerts.raise_alert(kind="server_suspect", level=Alert.Level.WARNING, message="x", server=server)
    User = get_user_model()
    alice = User.objects.create_user("alice")
    bob = User.objects.create_user("bob")

    assert alerts.acknowledge(alert, alice)
    assert not alerts.acknowledge(alert, bob)

    alert.refresh_from_db()
    assert alert.acknowledged_by == alice
    assert alert.acknowledged_at is not None


def test_a_dedupe_window_repeats_an_alert_only_after_the_window():
    now = timezone.now()
    window = dt.timedelta(hours=24)
    first = alerts.raise_alert(kind="x", level="info", message="a", dedupe_key="k", dedupe_window=window, now=now)
    again = alerts.raise_alert(
        kind="x", level="info", message="a", dedupe_key="k", dedupe_window=window, now=now + dt.timedelta(hours=1)
    )
    later = alerts.raise_alert(
        kind="x", level="info", message="a", dedupe_key="k", dedupe_window=window, now=now + dt.timedelta(hours=25)
    )

    assert first is not None
    assert again is None
    assert later is not None
