"""Recording outcomes: statuses, backoff, give-up, suppression, counters, events and server stats."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import outcomes, suppression
from campaigns.models import Campaign, DeliveryEvent, Message, MessageStatus, Suppression
from campaigns.outcomes import Attempt, retry_delay
from campaigns.sender import send_batch
from servers import quota
from servers.classify import classify
from servers.daytime import sending_day
from servers.models import ServerDailyStat
from servers.outcome import Category, Outcome, Status
from tests.support.engine import claim, make_campaign, make_server, recipients_of

pytestmark = pytest.mark.django_db

ACCEPTED = classify(250, "2.0.0 Ok: queued as 42", stage="data")
GREYLISTED = classify(451, "4.7.1 Greylisted, please try again later", stage="rcpt")
MAILBOX_FULL = classify(452, "4.2.2 Mailbox full", stage="rcpt")
NO_SUCH_USER = classify(550, "5.1.1 The email account that you tried to reach does not exist", stage="rcpt")
BLOCKLISTED = classify(554, "5.7.1 Service unavailable; client host blocked using zen.spamhaus.org", stage="rcpt")
TOO_BIG = classify(552, "5.3.4 Message size exceeds fixed limit", stage="data")
LOST = classify(None, "no reply after the message was sent", stage="data")


def record(server, pairs):
    return outcomes.record(server=server, day=sending_day(), attempts=[Attempt(m, o) for m, o in pairs])


def test_backoff_starts_at_5_minutes_doubles_and_stops_at_4_hours():
    assert [retry_delay(n) for n in range(1, 9)] == [
        dt.timedelta(minutes=m) for m in (5, 10, 20, 40, 80, 160, 240, 240)
    ]


def test_a_longer_retry_after_from_the_server_wins():
    assert retry_delay(1, retry_after=3600) == dt.timedelta(hours=1)
    assert retry_delay(3, retry_after=60) == dt.timedelta(minutes=20)


def test_each_outcome_lands_in_its_status_with_counters_events_and_stats():
    server = make_server()
    emails = ["ok@example.com", "grey@example.com", "gone@example.com", "blocked@example.com",
              "big@example.com", "lost@example.com"]
    campaign = make_campaign(emails)
    messages = claim(campaign, server=server)
    now = timezone.now()

    result = record(server, zip(messages, [ACCEPTED, GREYLISTED, NO_SUCH_USER, BLOCKLISTED, TOO_BIG, LOST]))

    rows = {m.to_email: m for m in Message.objects.filter(campaign=campaign)}
    assert rows["ok@example.com"].status == MessageStatus.SENT
    assert rows["ok@example.com"].sent_at is not None
    grey = rows["grey@example.com"]
    assert grey.status == MessageStatus.DEFERRED
    assert grey.attempts == 1
    assert dt.timedelta(minutes=4) < grey.next_attempt_at - now <= dt.timedelta(minutes=6)
    assert rows["gone@example.com"].status == MessageStatus.BOUNCED
    assert rows["gone@example.com"].enhanced_status == "5.1.1"
    assert rows["blocked@example.com"].status == MessageStatus.FAILED
    assert rows["big@example.com"].status == MessageStatus.FAILED
    assert rows["lost@example.com"].status == MessageStatus.UNKNOWN
    assert all(m.lease_expires_at is None and m.server_id == server.pk for m in rows.values())

    campaign.refresh_from_db()
    assert (campaign.sent, campaign.deferred, campaign.bounced, campaign.failed, campaign.unknown) == (1, 1, 1, 2, 1)
    assert result["sent"] == 1
    stats = ServerDailyStat.objects.get(server=server)
    assert (stats.sent, stats.deferred, stats.bounced, stats.failed, stats.unknown) == (1, 1, 1, 2, 1)
    # The blocklist reply and the greylisting (4.7.1) count against the server.
    assert stats.policy_blocks == 2
    assert DeliveryEvent.objects.filter(message__campaign=campaign).count() == 6
    assert set(DeliveryEvent.objects.values_list("kind", flat=True)) == {
        "sent", "deferred", "bounced", "failed", "unknown"}


def test_a_hard_bounce_suppresses_the_address_everywhere():
    server = make_server()
    campaign = make_campaign(["Gone@Example.com"])
    other = make_campaign(["gone@example.com"])
    [message] = claim(campaign, server=server)
    Message.objects.create(campaign=other, to_email="gone@example.com", status=MessageStatus.QUEUED)

    record(server, [(message, NO_SUCH_USER)])

    entry = Suppression.objects.get()
    assert entry.email == "gone@example.com"
    assert entry.reason == Suppression.Reason.HARD_BOUNCE
    assert "5.1.1" in entry.source
    # The other campaign's queued message to the same person is cancelled at once.
    assert Message.objects.get(campaign=other).status == MessageStatus.SUPPRESSED
    other.refresh_from_db()
    assert other.suppressed == 1


def test_a_policy_block_never_suppresses_the_recipient():
    server = make_server()
    campaign = make_campaign(["person@example.com"])
    [message] = claim(campaign, server=server)

    record(server, [(message, BLOCKLISTED)])

    assert not suppression.is_suppressed("person@example.com")
    assert ServerDailyStat.objects.get(server=server).policy_blocks == 1


def test_a_mailbox_full_reply_is_retried_not_bounced():
    server = make_server()
    [message] = claim(make_campaign(["full@example.com"]), server=server)
    record(server, [(message, MAILBOX_FULL)])
    message.refresh_from_db()
    assert message.status == MessageStatus.DEFERRED
    assert not suppression.is_suppressed("full@example.com")


def test_deferrals_give_up_after_3_days_with_the_last_reply():
    server = make_server()
    [message] = claim(make_campaign(["slow@example.com"]), server=server)
    start = dt.datetime(2026, 3, 9, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        record(server, [(message, GREYLISTED)])
        message.refresh_from_db()
        assert message.first_attempt_at == start

        clock.move_to(start + dt.timedelta(days=2, hours=23))
        Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
        message.refresh_from_db()
        record(server, [(message, GREYLISTED)])
        message.refresh_from_db()
        assert message.status == MessageStatus.DEFERRED
        assert message.attempts == 2
        assert message.next_attempt_at - timezone.now() == dt.timedelta(minutes=10)

        clock.move_to(start + dt.timedelta(days=3, minutes=1))
        Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
        message.refresh_from_db()
        record(server, [(message, GREYLISTED)])

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert message.reply_text.startswith("gave up after 3 days: 451 4.7.1 Greylisted")
    assert message.campaign.failed == 1


def test_a_sendgrid_rate_limit_retry_after_is_honoured():
    server = make_server()
    [message] = claim(make_campaign(["rl@example.com"]), server=server)
    limited = Outcome(status=Status.DEFERRED, category=Category.SOFT, code=429, enhanced="",
                      text="too many requests", retry_after=7200.0)
    now = timezone.now()
    record(server, [(message, limited)])
    message.refresh_from_db()
    assert message.next_attempt_at - now >= dt.timedelta(hours=2) - dt.timedelta(seconds=5)


def test_rows_that_changed_hands_are_left_alone():
    server = make_server()
    campaign = make_campaign(["a@example.com", "b@example.com"])
    first, second = claim(campaign, server=server)
    Message.objects.filter(pk=second.pk).update(status=MessageStatus.CANCELLED)

    record(server, [(first, ACCEPTED), (second, ACCEPTED)])

    second.refresh_from_db()
    assert second.status == MessageStatus.CANCELLED
    campaign.refresh_from_db()
    assert campaign.sent == 1
    # The server really sent both, so its own aggregates say so.
    assert ServerDailyStat.objects.get(server=server).sent == 2


def test_a_batch_is_recorded_with_a_constant_number_of_queries():
    server = make_server()
    warm = claim(make_campaign(["w@example.com"]), server=server)
    record(server, [(warm[0], ACCEPTED)])  # creates today's stats row, a one-off per server and day
    small = claim(make_campaign([f"s{i}@example.com" for i in range(3)]), server=server)
    large = claim(make_campaign([f"l{i}@example.com" for i in range(60)]), server=server)
    with CaptureQueriesContext(connection) as few:
        record(server, [(m, ACCEPTED) for m in small])
    with CaptureQueriesContext(connection) as many:
        record(server, [(m, ACCEPTED) for m in large])
    assert len(many) == len(few)


def test_a_batch_of_hard_bounces_is_suppressed_with_a_constant_number_of_queries():
    server = make_server()
    warm = claim(make_campaign(["w@example.com"]), server=server)
    record(server, [(warm[0], ACCEPTED)])  # creates today's stats row, a one-off per server and day
    one = claim(make_campaign(["gone0@example.com"]), server=server)
    many = claim(make_campaign([f"gone{i}@example.org" for i in range(40)]), server=server)
    full = classify(550, "5.1.1 Mailbox gone0 full of nothing", stage="rcpt")
    with CaptureQueriesContext(connection) as single:
        record(server, [(one[0], full)])
    with CaptureQueriesContext(connection) as batch:
        record(server, [(m, NO_SUCH_USER) for m in many])

    assert len(batch) == len(single)
    assert Suppression.objects.filter(reason=Suppression.Reason.HARD_BOUNCE).count() == 41
    # Each address still carries the reply that condemned it.
    assert "gone0 full of nothing" in Suppression.objects.get(email="gone0@example.com").source
    assert "does not exist" in Suppression.objects.get(email="gone7@example.org").source


def test_pending_mail_to_a_suppressed_address_is_found_through_an_index():
    from campaigns.suppression import pending_to

    # Thousands of queued messages: the status alone narrows nothing, the address does.
    campaign = make_campaign([])
    Message.objects.bulk_create(
        [Message(campaign=campaign, to_email=f"Agent{i}@example.com") for i in range(5000)], batch_size=1000
    )
    sql, params = pending_to(["agent7@example.com", "agent9@example.com"]).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        cursor.execute(("EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN ") + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())

    assert "message_address" in plan, plan
    assert pending_to(["agent7@example.com"]).get().to_email == "Agent7@example.com"


def test_a_suppressed_address_is_never_sent_even_after_dispatch(relay):
    server = make_server(relay)
    campaign = make_campaign(["keep@example.com", "drop@example.com"])
    messages = claim(campaign, server=server)
    day = sending_day()
    quota.reserve(server, 2, day=day)
    # Unsubscribed between the dispatch (already claimed) and the send.
    suppression.suppress("DROP@example.com", reason=Suppression.Reason.UNSUBSCRIBE, source="test")

    result = send_batch(server=server, messages=messages, day=day)

    assert recipients_of(relay) == ["keep@example.com"]
    assert result.counts[MessageStatus.SUPPRESSED] == 1
    assert Message.objects.get(to_email="drop@example.com").status == MessageStatus.SUPPRESSED
    campaign.refresh_from_db()
    assert (campaign.sent, campaign.suppressed) == (1, 1)
    assert quota.used_today([server.pk], day)[server.pk][0] == 1  # the unsent one gave its slot back


def test_suppressing_cancels_queued_and_deferred_mail_but_not_sent_mail():
    campaign = make_campaign(["x@example.com"])
    queued = Message.objects.create(campaign=campaign, to_email="x@example.com", status=MessageStatus.QUEUED)
    deferred = Message.objects.create(campaign=campaign, to_email="X@example.com", status=MessageStatus.DEFERRED)
    sent = Message.objects.create(campaign=campaign, to_email="x@example.com", status=MessageStatus.SENT)

    assert suppression.suppress_many(["x@example.com", "X@EXAMPLE.COM"], reason="manual") == 1
    assert suppression.suppress("x@example.com", reason="complaint") is False  # idempotent, first reason kept

    statuses = dict(Message.objects.values_list("pk", "status"))
    assert statuses == {queued.pk: "suppressed", deferred.pk: "suppressed", sent.pk: "sent"}
    assert Suppression.objects.get().reason == "manual"
    assert Campaign.objects.get().suppressed == 2


def test_suppression_round_trips_through_csv(tmp_path):
    import io

    suppression.suppress("a@example.com", reason="manual", source="=cmd|' /C calc'!A0")
    buffer = io.StringIO()
    assert suppression.export_csv(buffer) == 1
    text = buffer.getvalue()
    assert "'=cmd" in text  # formula-safe

    data = "email,reason\nb@example.com,complaint\nnot-an-address,manual\nc@example.com,\n".encode()
    summary = suppression.import_csv(io.BytesIO(data))
    assert summary.added == 2
    assert len(summary.errors) == 1
    assert suppression.reason_for("b@example.com").reason == "complaint"
    assert suppression.reason_for("c@example.com").reason == "manual"
    assert suppression.unsuppress("b@example.com") is True
    assert not suppression.is_suppressed("b@example.com")
