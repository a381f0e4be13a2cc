"""send_email: the seed's result shape, validation, suppression, routing, overflow, caps and failover,
against real loopback relays and the SendGrid stand-in."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import zoneinfo
from collections import Counter

import pytest
import time_machine
from django.core.management import call_command

from campaigns import suppression
from campaigns.models import Message, MessageStatus
from campaigns.sending import send_email, send_email_report
from mailops.errors import DomainError
from servers.daytime import sending_day
from servers.models import RotationStrategy, Server, ServerState
from tests.support.engine import make_config, make_sendgrid, make_server, recipients_of
from tests.support.relays import quick_smtp_timeouts

pytestmark = pytest.mark.django_db

GEO = {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}


@pytest.fixture(autouse=True)
def quick_timeouts(settings):
    quick_smtp_timeouts(settings)


@pytest.fixture
def sendgrid_host(settings, sendgrid_api):
    settings.MAILOPS = {**settings.MAILOPS, "SENDGRID_API_HOST": sendgrid_api.url}
    return sendgrid_api


def send(to: str = "ana@example.com", **kwargs):
    kwargs.setdefault("subject", "Hello")
    kwargs.setdefault("text", "Hi there")
    return send_email(to=to, **kwargs)


def test_it_returns_the_seeds_shape_and_the_relay_gets_the_message(relay):
    server = make_server(relay, name="SMTP Server 1", ip="203.0.113.7")
    make_config()

    result = send("Ana <ana@example.com>", subject="Welcome", html="<p>Hi</p>", from_="Team <team@example.com>",
                  reply_to="help@example.com", headers={"X-Campaign": "spring"})

    assert result == {"success": True, "server": "SMTP Server 1", "messageId": result["messageId"],
                      "ipAddress": "203.0.113.7"}
    [received] = relay.messages
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Message-ID"] == result["messageId"]
    assert parsed["Subject"] == "Welcome"
    assert parsed["From"] == "Team <team@example.com>"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["X-Campaign"] == "spring"
    assert received.rcpt_tos == ("ana@example.com",)
    message = Message.objects.get()
    assert message.status == MessageStatus.SENT
    assert message.server == server
    assert message.message_id == result["messageId"]
    assert message.campaign is None and message.payload["subject"] == "Welcome"


def test_a_display_name_can_be_given_apart_from_a_bare_address(relay):
    make_server(relay)
    make_config()
    assert send(from_="sales@example.com", from_name="Ventas, S.A.")["success"] is True
    parsed = email.message_from_bytes(relay.messages[0].data, policy=email.policy.default)
    assert parsed["From"].addresses[0].display_name == "Ventas, S.A."
    assert parsed["From"].addresses[0].addr_spec == "sales@example.com"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"to": "not an address"}, "to"),
        ({"to": "ana@"}, "to"),
        ({"subject": ""}, "subject"),
        ({"text": "", "html": ""}, "html"),
        ({"from_": "nobody"}, "from"),
        ({"reply_to": "x@y"}, "replyTo"),
    ],
)
def test_bad_input_is_refused_with_the_field(relay, kwargs, field):
    make_server(relay)
    with pytest.raises(DomainError) as caught:
        send(**kwargs)
    assert caught.value.field == field
    assert relay.messages == []
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"subject": "Hi\nBcc: victim@example.com"}, "subject"),
        ({"to": "ana@example.com\r\nBcc: victim@example.com"}, "to"),
        ({"from_": "team@example.com\nBcc: victim@example.com"}, "from"),
        ({"reply_to": "help@example.com\rBcc: victim@example.com"}, "replyTo"),
        ({"headers": {"X-Note": "ok\r\nBcc: victim@example.com"}}, "headers"),
        ({"headers": {"X-Bad\r\nBcc": "victim@example.com"}}, "headers"),
        ({"from_": "team@example.com", "from_name": "Team\r\nBcc: victim@example.com"}, "from"),
    ],
)
def test_header_injection_is_refused(relay, kwargs, field):
    make_server(relay)
    with pytest.raises(DomainError) as caught:
        send(**kwargs)
    assert caught.value.field == field
    assert relay.messages == []
    assert not Message.objects.exists()


def test_a_suppressed_recipient_is_refused_with_the_reason(relay):
    make_server(relay)
    suppression.suppress("ana@example.com", reason="unsubscribe", source="one-click link")
    with pytest.raises(DomainError) as caught:
        send("ANA@example.com")
    assert "suppression list" in caught.value.message
    assert "unsubscribed" in caught.value.message
    assert caught.value.extra["reason"] == "unsubscribe"
    assert relay.messages == []


def test_region_rules_route_mail_and_fall_back_when_a_region_has_no_server(relay_factory):
    us, eu = relay_factory(name="us"), relay_factory(name="eu")
    make_server(us, name="US 1", region="US")
    make_server(eu, name="EU 1", region="EU")
    make_config(routing_rules=GEO)

    assert send("ana@empresa.es")["server"] == "EU 1"
    assert send("bob@example.com")["server"] == "US 1"
    # No LATAM server: the mail falls back to another region rather than waiting.
    assert send("carla@correo.com.mx")["success"] is True
    assert recipients_of(eu)[0] == "ana@empresa.es"
    assert Message.objects.get(to_email="carla@correo.com.mx").region == "LATAM"


def test_strict_routing_holds_mail_for_an_exhausted_region(relay_factory):
    us, eu = relay_factory(name="us"), relay_factory(name="eu")
    make_server(us, name="US 1", region="US")
    make_server(eu, name="EU 1", region="EU", daily_limit=1)
    make_config(routing_rules=GEO, strict_routing=True)

    assert send("ana@empresa.es")["server"] == "EU 1"
    held = send("bea@empresa.es")

    assert held["success"] is False
    assert "region EU" in held["error"]
    assert held["retryAt"]
    assert Message.objects.get(to_email="bea@empresa.es").status == MessageStatus.DEFERRED
    assert recipients_of(us) == []


def test_sendgrid_is_used_only_as_overflow(relay_factory, sendgrid_host):
    relays = [relay_factory(name=f"r{i}") for i in range(2)]
    for i, relay in enumerate(relays):
        make_server(relay, name=f"SMTP Server {i + 1}", daily_limit=3)
    make_sendgrid(sendgrid_host, daily_limit=10)
    make_config()

    servers = [send(f"user{i}@example.com")["server"] for i in range(10)]

    assert servers[:6].count("SendGrid") == 0
    assert Counter(servers[:6]) == {"SMTP Server 1": 3, "SMTP Server 2": 3}
    assert servers[6:] == ["SendGrid"] * 4
    assert len(sendgrid_host.sends()) == 4
    body = sendgrid_host.sends()[0].json
    assert body["personalizations"][0]["to"][0]["email"] == "user6@example.com"


def test_sendgrid_refusing_the_key_marks_it_down_and_the_message_waits(sendgrid_host):
    sendgrid = make_sendgrid(sendgrid_host, api_key="SG.wrong")
    make_config()

    result = send()

    assert result["success"] is False
    assert result["retryAt"]
    sendgrid.refresh_from_db()
    assert sendgrid.state == ServerState.DOWN
    assert Message.objects.get().status == MessageStatus.DEFERRED


def test_sendgrid_forbidding_the_key_marks_it_down_and_the_message_waits(sendgrid_host):
    from tests.support.sendgrid_server import Reply

    # A valid key without the mail.send scope: SendGrid answers 403, and no send can work.
    sendgrid_host.queue(Reply(403, {"errors": [{"field": None, "message": "access forbidden"}]}))
    sendgrid = make_sendgrid(sendgrid_host)
    make_config()

    result = send()

    assert result["success"] is False
    assert result["retryAt"]
    sendgrid.refresh_from_db()
    assert sendgrid.state == ServerState.DOWN
    assert "SendGrid refused the API key: 403 access forbidden" in sendgrid.state_reason
    message = Message.objects.get()
    assert (message.status, message.attempts) == (MessageStatus.DEFERRED, 0)
    assert len(sendgrid_host.sends()) == 1


def test_it_fails_over_to_the_next_server_in_the_same_call(relay_factory):
    down, up = relay_factory(name="down"), relay_factory(name="up")
    first = make_server(down, name="SMTP Server 1", reputation=99.0)
    make_server(up, name="SMTP Server 2", reputation=90.0)
    # Best performance tries the better server first, so the failover is certain to happen.
    make_config(strategy=RotationStrategy.BEST_PERFORMANCE)
    down.set_down()

    report = send_email_report(to="ana@example.com", subject="Hi", text="Hello")

    assert report.response["success"] is True
    assert report.response["server"] == "SMTP Server 2"
    assert [t.server for t in report.tried] == ["SMTP Server 1"]
    assert "connect failed" in report.tried[0].reason
    assert recipients_of(up) == ["ana@example.com"]
    first.refresh_from_db()
    assert first.suspect_until is not None
    message = Message.objects.get()
    assert message.attempts == 1 and message.status == MessageStatus.SENT


def test_a_421_moves_the_message_to_the_next_server(relay_factory):
    busy, calm = relay_factory(name="busy"), relay_factory(name="calm")
    make_server(busy, name="SMTP Server 1", reputation=99.0)
    make_server(calm, name="SMTP Server 2", reputation=90.0)
    make_config(strategy=RotationStrategy.BEST_PERFORMANCE)
    busy.set_override("ana@example.com", "421 4.7.0 Too many connections, try again later")

    result = send("ana@example.com")

    assert result["server"] == "SMTP Server 2"
    assert recipients_of(busy) == []
    assert busy.counters["connections"] == 1
    assert recipients_of(calm) == ["ana@example.com"]


def test_when_every_server_fails_the_message_is_deferred_with_a_reason_never_lost(relay_factory):
    a, b = relay_factory(name="a"), relay_factory(name="b")
    make_server(a, name="SMTP Server 1")
    make_server(b, name="SMTP Server 2")
    make_config()
    a.set_down()
    b.set_down()

    result = send()

    assert result["success"] is False
    assert "every eligible server failed" in result["error"]
    assert "SMTP Server 1" in result["error"] and "SMTP Server 2" in result["error"]
    retry_at = dt.datetime.fromisoformat(result["retryAt"])
    assert retry_at > dt.datetime.now(dt.UTC)
    message = Message.objects.get()
    assert message.status == MessageStatus.DEFERRED
    assert message.attempts == 0
    assert message.next_attempt_at == retry_at


def test_an_empty_pool_defers_until_the_caps_reset(settings):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    make_config()
    result = send()
    assert result["success"] is False
    assert "no eligible server has capacity" in result["error"]
    midnight = dt.datetime.combine(sending_day() + dt.timedelta(days=1), dt.time.min,
                                   tzinfo=zoneinfo.ZoneInfo("America/Mexico_City"))
    assert dt.datetime.fromisoformat(result["retryAt"]) == midnight


def test_a_hard_bounce_is_reported_and_suppresses(relay):
    make_server(relay)
    make_config()
    result = send("bounce-1@example.com")
    assert result == {"success": False, "error": result["error"], "retryAt": None}
    assert "5.1.1" in result["error"]
    assert suppression.is_suppressed("bounce-1@example.com")


def test_a_warm_up_server_takes_exactly_50_single_sends(relay, settings):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    with time_machine.travel(dt.datetime(2026, 3, 9, 12, 0, tzinfo=zoneinfo.ZoneInfo("America/Mexico_City"))):
        make_server(relay, name="New IP", warmup="default-6-day", warmup_started_on=dt.date(2026, 3, 9))
        make_config()
        results = [send(f"user{i}@example.com") for i in range(55)]
    assert sum(r["success"] for r in results) == 50
    assert len(relay.messages) == 50
    assert all("no eligible server has capacity" in r["error"] for r in results[50:])


def test_sendtest_prints_which_server_took_it_and_why(relay_factory, capsys):
    down, up = relay_factory(name="down"), relay_factory(name="up")
    make_server(down, name="SMTP Server 1", region="EU", daily_limit=10)
    make_server(up, name="SMTP Server 2", region="EU", daily_limit=20)
    # Least used: both are at 0%, and the tie goes to the first, which is down.
    make_config(strategy=RotationStrategy.LEAST_USED, routing_rules=GEO)
    down.set_down()

    call_command("sendtest", "--to", "ana@empresa.es")

    out = capsys.readouterr().out
    assert "SMTP Server 2" in out
    assert "least-used" in out
    assert "region: EU" in out
    assert "priority: 1" in out
    assert "quota left today: 19/20" in out
    assert "SMTP Server 1: connect failed" in out
    assert recipients_of(up) == ["ana@empresa.es"]


def test_sendtest_fails_loudly_when_nothing_could_send():
    from django.core.management.base import CommandError

    make_config()
    with pytest.raises(CommandError, match="not sent"):
        call_command("sendtest", "--to", "ana@example.com")
    assert Server.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_single_sends_first_reservation_shares_the_commit_of_its_row(relay_factory):
    """One disk flush fewer per single send: the first reservation rides in the transaction
    that creates the Message row; a failover's reservation commits on its own."""
    from django.db import connection

    from servers.models import Quota

    down, up = relay_factory(name="down"), relay_factory(name="up")
    make_server(down, name="SMTP Server 1", reputation=99.0)
    make_server(up, name="SMTP Server 2", reputation=90.0)
    make_config(strategy=RotationStrategy.BEST_PERFORMANCE)
    down.set_down()
    statements: list[tuple[str, bool]] = []

    def record(execute, sql, params, many, context):
        statements.append((sql, connection.in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        report = send_email_report(to="ana@example.com", subject="Hi", text="Hello")

    assert report.response["server"] == "SMTP Server 2"
    takes = [in_transaction for sql, in_transaction in statements if sql.startswith(f"UPDATE {Quota._meta.db_table} SET used = used +")]
    inserted = next(in_transaction for sql, in_transaction in statements if sql.startswith("INSERT INTO") and "campaigns_message" in sql)
    assert inserted is True
    assert takes == [True, False]
