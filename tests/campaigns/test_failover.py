"""send_batch against real loopback relays: one connection per batch, failover when a
server is down, refuses AUTH or drops the connection, and every message delivered once."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest
import time_machine

from campaigns.models import Message, MessageStatus
from campaigns.sender import send_batch
from servers import quota
from servers.daytime import sending_day
from servers.models import RotationStrategy, Server, ServerState
from servers.relay import Fault
from servers.rotation import eligible_servers, load_pool
from tests.support.engine import claim, make_campaign, make_config, make_server, recipients_of

pytestmark = pytest.mark.django_db

EMAILS = [f"person{i}@example.com" for i in range(6)]


def dispatch_until_done(*, rounds: int = 10) -> None:
    """A minimal dispatcher: route every queued message through the pool, reserve, send.

    Enough to watch failover happen across batches without the real pipeline."""
    day = sending_day()
    for _ in range(rounds):
        queued = list(Message.objects.filter(status=MessageStatus.QUEUED).order_by("pk"))
        if not queued:
            return
        pool = load_pool(day=day)
        by_server: dict[int, list[Message]] = {}
        for message in queued:
            slot = pool.pick(message.region)
            if slot is None:
                return
            by_server.setdefault(slot.id, []).append(message)
        for server_id, messages in by_server.items():
            server = Server.objects.get(pk=server_id)
            granted = quota.reserve(server, len(messages), day=day)
            messages = messages[:granted]
            Message.objects.filter(pk__in=[m.pk for m in messages]).update(status=MessageStatus.SENDING, server=server)
            for m in messages:
                m.status = MessageStatus.SENDING
            send_batch(server=server, messages=messages, day=day)


def test_it_sends_a_batch_over_one_connection(relay):
    server = make_server(relay)
    campaign = make_campaign(EMAILS)
    messages = claim(campaign, server=server)
    day = sending_day()
    assert quota.reserve(server, len(messages), day=day) == len(messages)

    result = send_batch(server=server, messages=messages, day=day)

    assert result.sent == len(EMAILS)
    assert sorted(recipients_of(relay)) == sorted(EMAILS)
    assert relay.counters["connections"] == 1
    campaign.refresh_from_db()
    assert campaign.sent == len(EMAILS)
    rows = Message.objects.filter(campaign=campaign)
    assert {m.status for m in rows} == {MessageStatus.SENT}
    assert all(m.message_id.startswith("<") and m.attempts == 1 for m in rows)
    assert quota.used_today([server.pk], day)[server.pk][0] == len(EMAILS)


def test_it_fails_over_when_a_relay_is_down(relay_factory):
    down = relay_factory(name="down")
    up = relay_factory(name="up")
    dead = make_server(down, name="A dead")
    alive = make_server(up, name="B alive")
    make_config()
    down.set_down()
    campaign = make_campaign(EMAILS)
    Message.objects.bulk_create(
        [Message(campaign=campaign, to_email=e, status=MessageStatus.QUEUED) for e in EMAILS]
    )

    dispatch_until_done()

    assert sorted(recipients_of(up)) == sorted(EMAILS)
    assert Counter(recipients_of(up)) == Counter(EMAILS)  # exactly once each
    dead.refresh_from_db()
    assert dead.suspect_until is not None
    assert quota.used_today([dead.pk])[dead.pk][0] == 0  # reservations given back
    assert not Message.objects.exclude(status=MessageStatus.SENT).exists()
    assert Message.objects.filter(server=alive).count() == len(EMAILS)
    assert all(m.attempts == 1 for m in Message.objects.all())


def test_it_fails_over_when_a_relay_refuses_auth(relay_factory):
    strict = relay_factory(name="strict", username="mailer", password="right")
    other = relay_factory(name="other")
    refused = make_server(strict, name="A refuses", username="mailer", password="wrong")
    make_server(other, name="B other")
    make_config()
    campaign = make_campaign(EMAILS)
    Message.objects.bulk_create([Message(campaign=campaign, to_email=e) for e in EMAILS])

    dispatch_until_done()

    assert strict.messages == []
    assert Counter(recipients_of(other)) == Counter(EMAILS)
    refused.refresh_from_db()
    assert refused.suspect_until is not None
    assert refused.state == ServerState.ACTIVE  # suspect only; health checks decide "down"


def test_it_fails_over_when_the_connection_drops_mid_session(relay_factory):
    flaky = relay_factory(name="flaky")
    steady = relay_factory(name="steady")
    make_server(flaky, name="A flaky")
    make_server(steady, name="B steady")
    make_config()
    # Two messages go through, then the relay cuts every connection at MAIL FROM, so the
    # transport's one reconnect fails too and the rest of the batch must move.
    flaky.queue_faults(Fault.NONE, Fault.NONE, Fault.DROP, Fault.DROP, Fault.DROP, Fault.DROP)
    campaign = make_campaign(EMAILS)
    Message.objects.bulk_create([Message(campaign=campaign, to_email=e) for e in EMAILS])

    dispatch_until_done()

    delivered = recipients_of(flaky) + recipients_of(steady)
    assert Counter(delivered) == Counter(EMAILS)
    assert len(recipients_of(flaky)) >= 1
    assert len(recipients_of(steady)) >= 1
    assert not Message.objects.exclude(status=MessageStatus.SENT).exists()


def test_an_unknown_outcome_after_data_is_recorded_and_not_resent(relay_factory):
    lossy = relay_factory(name="lossy")
    other = relay_factory(name="other")
    make_server(lossy, name="A lossy", reputation=99.0)
    make_server(other, name="B other", reputation=90.0)
    make_config(strategy=RotationStrategy.BEST_PERFORMANCE)  # the lossy relay is certain to be tried
    lossy.queue_faults(Fault.DROP_AFTER_DATA)
    campaign = make_campaign(EMAILS[:1])
    Message.objects.bulk_create([Message(campaign=campaign, to_email=EMAILS[0])])

    dispatch_until_done()

    message = Message.objects.get()
    assert message.status == MessageStatus.UNKNOWN
    assert message.attempts == 1
    assert "no reply after the message was sent" in message.reply_text
    # The relay did get it once; nobody sent it again.
    assert recipients_of(lossy) == [EMAILS[0]]
    assert recipients_of(other) == []
    campaign.refresh_from_db()
    assert campaign.unknown == 1
    from servers.models import ServerDailyStat

    assert ServerDailyStat.objects.get(server__name="A lossy").unknown == 1


def test_a_server_paused_after_dispatch_gets_no_traffic(relay):
    server = make_server(relay)
    messages = claim(make_campaign(EMAILS[:3]), server=server)
    day = sending_day()
    quota.reserve(server, 3, day=day)
    Server.objects.filter(pk=server.pk).update(state=ServerState.PAUSED_BLOCKLISTED)

    result = send_batch(server=server, messages=messages, day=day)

    assert relay.messages == []
    assert relay.counters["connections"] == 0
    assert len(result.unsent) == 3
    assert set(Message.objects.values_list("status", flat=True)) == {MessageStatus.QUEUED}
    assert quota.used_today([server.pk], day)[server.pk][0] == 0


@pytest.fixture
def sendgrid_server(settings, sendgrid_api):
    from tests.support.engine import make_sendgrid

    settings.MAILOPS = {**settings.MAILOPS, "SENDGRID_API_HOST": sendgrid_api.url}
    return make_sendgrid(sendgrid_api)


def test_sendgrid_replies_become_outcomes(sendgrid_api, sendgrid_server):
    from tests.support.sendgrid_server import Reply

    sendgrid_api.queue(
        Reply(202),
        Reply(400, {"errors": [{"field": "content", "message": "content value must be a string"}]}),
        Reply(drop=True),
    )
    emails = ["ok@example.com", "bad@example.com", "lost@example.com"]
    messages = claim(make_campaign(emails), server=sendgrid_server)
    day = sending_day()
    quota.reserve(sendgrid_server, 3, day=day)

    send_batch(server=sendgrid_server, messages=messages, day=day)

    rows = {m.to_email: m for m in Message.objects.all()}
    assert rows["ok@example.com"].status == MessageStatus.SENT
    assert rows["bad@example.com"].status == MessageStatus.FAILED
    assert "content value must be a string" in rows["bad@example.com"].reply_text
    assert rows["lost@example.com"].status == MessageStatus.UNKNOWN
    assert len(sendgrid_api.sends()) == 3  # the lost one was not sent again
    first = sendgrid_api.sends()[0].json
    assert first["custom_args"]["mailops_message"] == str(rows["ok@example.com"].pk)
    assert first["custom_args"]["mailops_message_id"] == rows["ok@example.com"].message_id


def test_a_sendgrid_rate_limit_stops_the_batch_and_holds_the_server_until_the_reset(sendgrid_api, sendgrid_server):
    from tests.support.sendgrid_server import Reply

    reset = int(time.time()) + 600
    sendgrid_api.queue(
        Reply(202),
        Reply(429, {"errors": [{"message": "too many requests"}]}, headers={"X-RateLimit-Reset": str(reset)}),
    )
    emails = [f"rl{i}@example.com" for i in range(5)]
    messages = claim(make_campaign(emails), server=sendgrid_server)
    day = sending_day()
    quota.reserve(sendgrid_server, 5, day=day)

    result = send_batch(server=sendgrid_server, messages=messages, day=day)

    # Nothing more was posted into the rate limit once SendGrid said 429.
    assert len(sendgrid_api.sends()) == 2
    rows = {m.to_email: m for m in Message.objects.all()}
    assert rows["rl0@example.com"].status == MessageStatus.SENT
    # The limited message and the rest were never judged: back in the queue, no attempt used.
    for email in emails[1:]:
        assert (rows[email].status, rows[email].attempts, rows[email].server_id) == (MessageStatus.QUEUED, 0, None)
    assert result.server_failure is not None and result.server_failure.code == 429
    assert quota.used_today([sendgrid_server.pk], day)[sendgrid_server.pk][0] == 1
    sendgrid_server.refresh_from_db()
    assert sendgrid_server.state == ServerState.ACTIVE
    assert abs(sendgrid_server.suspect_until.timestamp() - reset) <= 2
    assert sendgrid_server.pk not in {s.pk for s in eligible_servers()}
    with time_machine.travel(dt.datetime.fromtimestamp(reset + 1, dt.UTC)):
        assert sendgrid_server.pk in {s.pk for s in eligible_servers()}


def test_a_brief_suspicion_does_not_shorten_a_rate_limit_hold(sendgrid_server):
    from servers import state

    state.mark_suspect(sendgrid_server, error="429 too many requests", seconds=3600)
    held_until = Server.objects.get(pk=sendgrid_server.pk).suspect_until

    state.mark_suspect(sendgrid_server, error="500 internal error")

    assert Server.objects.get(pk=sendgrid_server.pk).suspect_until == held_until


@pytest.mark.django_db(transaction=True)
def test_send_batch_paces_a_server_across_concurrent_batches(relay):
    import threading
    from pathlib import Path

    from django.db import connections

    delay = 0.2
    server = make_server(relay, min_delay=delay)
    messages = claim(make_campaign([f"p{i}@example.com" for i in range(9)]), server=server)
    day = sending_day()
    quota.reserve(server, 9, day=day)
    errors: list[BaseException] = []

    def worker(batch: list[Message]) -> None:
        try:
            send_batch(server=server, messages=batch, day=day)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(messages[i::3],)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 9
    names = [p.name for p in Path(relay.maildir, "new").iterdir()]
    times = sorted(float(".".join(n.split(".")[:2])) for n in names)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= delay - 0.05, gaps


def test_a_retried_message_keeps_its_message_id(relay):
    import email as email_lib

    server = make_server(relay)
    [message] = claim(make_campaign(["retry@example.com"]), server=server)
    day = sending_day()
    relay.queue_faults(Fault.DEFER_RCPT)
    quota.reserve(server, 2, day=day)

    send_batch(server=server, messages=[message], day=day)
    message.refresh_from_db()
    assert message.status == MessageStatus.DEFERRED
    first_id = message.message_id
    Message.objects.filter(pk=message.pk).update(status=MessageStatus.SENDING)
    message.refresh_from_db()
    send_batch(server=server, messages=[message], day=day)

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.message_id == first_id
    assert email_lib.message_from_bytes(relay.messages[0].data)["Message-ID"] == first_id


def test_an_edited_campaign_is_compiled_again(relay):
    import email as email_lib

    server = make_server(relay)
    campaign = make_campaign(["a@example.com", "b@example.com"], subject="First subject")
    first, second = claim(campaign, server=server)
    day = sending_day()
    quota.reserve(server, 2, day=day)
    send_batch(server=server, messages=[first], day=day)
    campaign.subject = "Second subject"
    campaign.save()
    send_batch(server=server, messages=[second], day=day)

    subjects = [email_lib.message_from_bytes(m.data)["Subject"] for m in relay.messages]
    assert subjects == ["First subject", "Second subject"]


def test_campaign_mail_is_dkim_signed_when_configured(relay, settings, tmp_path):
    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    settings.MAILOPS = {**settings.MAILOPS, "SENDER_DOMAIN": "example.com", "DKIM_SELECTOR": "mo",
                        "DKIM_PRIVATE_KEY_FILE": str(key_file)}
    server = make_server(relay)
    messages = claim(make_campaign(["signed@example.com"]), server=server)
    day = sending_day()
    quota.reserve(server, 1, day=day)

    send_batch(server=server, messages=messages, day=day)

    data = relay.messages[0].data
    assert data.startswith(b"DKIM-Signature:")
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record if name == b"mo._domainkey.example.com." else None)
    # One-click unsubscribe only counts when the signature covers both headers.
    import re

    signature = re.match(rb"DKIM-Signature:(.*?)\r\n(?![ \t])", data, re.S).group(1)
    signed = re.search(rb"h=([^;]*)", re.sub(rb"\s+", b"", signature)).group(1).lower().split(b":")
    assert b"list-unsubscribe" in signed and b"list-unsubscribe-post" in signed
