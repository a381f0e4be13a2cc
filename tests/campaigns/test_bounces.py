from __future__ import annotations

import datetime as dt
import re
import smtplib
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from campaigns import bounces
from campaigns.headers import verp_return_path
from campaigns.models import Campaign, DeliveryEvent, Message, MessageStatus, ProspectList, Suppression
from servers.daytime import sending_day
from servers.models import Server, ServerDailyStat
from tests.support.monitoring import make_server

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).parent / "dsn_samples"
DOMAIN = "bounces.example.com"
FAKE_VERP = re.compile(rb"b-\d+-[a-z2-7]{16}@bounces\.example\.com")
SENT_AT = timezone.now() - dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def bounce_domain(settings):
    settings.MAILOPS = {**django_settings.MAILOPS, "BOUNCE_DOMAIN": DOMAIN}


@pytest.fixture
def listener():
    controller = bounces.make_listener(host="127.0.0.1", port=0)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def campaign():
    prospects = ProspectList.objects.create(name="Agencies")
    return Campaign.objects.create(
        name="Spring", prospect_list=prospects, from_email="news@example.com", subject="Hi", status="running",
        total=1, sent=1,
    )


def sent_message(to: str, *, campaign=None, status=MessageStatus.SENT, message_id: str = "") -> Message:
    server = Server.objects.first() or make_server(1)
    return Message.objects.create(
        campaign=campaign,
        to_email=to,
        status=status,
        server=server,
        sent_at=SENT_AT,
        message_id=message_id or f"<{to.replace('@', '.')}@example.com>",
        attempts=1,
    )


def deliver(listener, raw: bytes, rcpt: str) -> None:
    # On the wire every line ends in CRLF, as a real MTA sends it.
    wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP(listener.hostname, listener.port, timeout=10) as client:
        client.sendmail("", [rcpt], wire)


def sample_for(name: str, message: Message) -> tuple[bytes, str]:
    """A real MTA's report with its VERP address swapped for the one of our message."""
    verp = verp_return_path(message.pk, DOMAIN)
    raw = FAKE_VERP.sub(verp.encode(), (SAMPLES / name).read_bytes())
    raw = re.sub(rb"X-Mailops-Message: \d+", f"X-Mailops-Message: {message.pk}".encode(), raw)
    return raw, verp


def dsn(message: Message, *, action: str, status: str, diagnostic: str) -> bytes:
    """A minimal RFC 3464 report, shaped like the ones Postfix sends."""
    verp = verp_return_path(message.pk, DOMAIN)
    return f"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {verp}
Subject: Delivery Status Notification
Message-ID: <dsn-{message.pk}-{action}@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b0undary"

--b0undary
Content-Type: text/plain; charset=us-ascii

Delivery report for {message.to_email}.

--b0undary
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {message.to_email}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--b0undary
Content-Type: text/rfc822-headers

Return-Path: <{verp}>
Message-ID: {message.message_id}
X-Mailops-Message: {message.pk}

--b0undary--
""".encode()


def day_stat(message: Message) -> ServerDailyStat:
    return ServerDailyStat.objects.get(server=message.server, day=sending_day(SENT_AT))


@pytest.mark.parametrize(
    ("sample", "recipient", "kind"),
    [
        ("postfix_user_unknown.eml", "nobody@example.org", "bounced"),
        ("office365_recipient_not_found.eml", "nobody@contoso.com", "bounced"),
        ("postfix_gmail_no_such_user.eml", None, "bounced"),
        ("postfix_delayed.eml", None, "deferred"),
        ("postfix_delivered.eml", None, "delivered"),
    ],
)
def test_real_mta_reports_sent_to_the_listener_are_matched_and_recorded(listener, sample, recipient, kind):
    from campaigns.dsn import parse_report

    recipient = recipient or parse_report((SAMPLES / sample).read_bytes()).recipients[0].final_recipient
    message = sent_message(recipient)
    raw, verp = sample_for(sample, message)

    deliver(listener, raw, verp)

    event = DeliveryEvent.objects.get(message=message)
    assert event.kind == kind
    assert event.source == "dsn"
    message.refresh_from_db()
    if kind == "bounced":
        assert event.category == "hard"
        assert message.status == MessageStatus.BOUNCED
        assert Suppression.objects.get(email=recipient.lower()).reason == Suppression.Reason.HARD_BOUNCE
        assert (day_stat(message).bounced, day_stat(message).returned) == (1, 1)
    else:
        assert message.status == MessageStatus.SENT
        assert not Suppression.objects.exists()
        assert getattr(day_stat(message), kind) == 1


def test_a_hard_bounce_moves_the_campaign_counters_and_suppresses_everywhere(listener, campaign):
    message = sent_message("gone@example.org", campaign=campaign)
    other_list = ProspectList.objects.create(name="Other")
    other = Campaign.objects.create(name="Later", prospect_list=other_list, from_email="n@example.com", subject="x",
                                    total=1)
    queued = Message.objects.create(campaign=other, to_email="GONE@example.org")

    deliver(listener, dsn(message, action="failed", status="5.1.1", diagnostic="550 5.1.1 User unknown"),
            verp_return_path(message.pk, DOMAIN))

    campaign.refresh_from_db()
    assert (campaign.sent, campaign.bounced) == (0, 1)
    queued.refresh_from_db()
    assert queued.status == MessageStatus.SUPPRESSED
    assert Suppression.objects.get().source == "dsn"


def test_the_same_report_delivered_twice_is_recorded_once(listener):
    message = sent_message("gone@example.org")
    raw = dsn(message, action="failed", status="5.1.1", diagnostic="550 5.1.1 User unknown")
    verp = verp_return_path(message.pk, DOMAIN)

    deliver(listener, raw, verp)
    deliver(listener, raw, verp)

    assert DeliveryEvent.objects.filter(message=message).count() == 1
    assert day_stat(message).bounced == 1


def test_a_policy_rejection_reported_later_fails_the_message_without_suppressing_the_recipient(listener):
    message = sent_message("someone@example.org")

    deliver(
        listener,
        dsn(message, action="failed", status="5.7.1", diagnostic="550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org"),
        verp_return_path(message.pk, DOMAIN),
    )

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert not Suppression.objects.exists()
    row = day_stat(message)
    assert (row.failed, row.policy_blocks, row.returned, row.bounced) == (1, 1, 1, 0)


def test_a_complaint_report_suppresses_the_recipient_and_counts_a_complaint(listener):
    message = sent_message("sunny.days@yahoo.com", message_id="<171666354001.1400.9f8e7d6c@example.com>")
    raw, _ = sample_for("arf_yahoo_abuse.eml", message)

    # Feedback loops mail a fixed address; the report quotes our VERP sender.
    deliver(listener, raw, f"fbl@{DOMAIN}")

    assert Suppression.objects.get(email="sunny.days@yahoo.com").reason == Suppression.Reason.COMPLAINT
    assert DeliveryEvent.objects.get(message=message).kind == "complained"
    assert day_stat(message).complained == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT


def test_a_delivery_report_resolves_a_message_whose_reply_was_lost(listener):
    message = sent_message("maybe@example.org", status=MessageStatus.UNKNOWN)
    ServerDailyStat.objects.create(server=message.server, day=sending_day(SENT_AT), unknown=1)

    deliver(listener, dsn(message, action="delivered", status="2.0.0", diagnostic="250 2.0.0 OK"),
            verp_return_path(message.pk, DOMAIN))

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    row = day_stat(message)
    assert (row.unknown, row.sent, row.delivered) == (0, 1, 1)


def test_the_listener_refuses_mail_for_other_domains(listener):
    with smtplib.SMTP(listener.hostname, listener.port, timeout=10) as client:
        client.ehlo("mx.example.org")
        client.mail("")
        code, _ = client.rcpt("someone@example.com")

    assert code == 550


def test_a_forged_verp_address_matches_nothing_and_suppresses_nobody():
    message = sent_message("victim@example.org")
    raw = dsn(message, action="failed", status="5.1.1", diagnostic="550 5.1.1 User unknown")
    forged = f"b-{message.pk}-aaaaaaaaaaaaaaaa@{DOMAIN}"
    # A forger knows the (sequential) message number, not the MAC or the random Message-ID.
    raw = raw.replace(verp_return_path(message.pk, DOMAIN).encode(), forged.encode())
    raw = raw.replace(message.message_id.encode(), b"<guessed@example.com>")

    result = bounces.handle_report(raw, envelope_to=forged)

    assert result.outcome == "unmatched"
    assert not Suppression.objects.exists()
    assert not DeliveryEvent.objects.exists()


def test_a_guessable_message_number_alone_never_matches():
    message = sent_message("victim@example.org")
    raw = FAKE_VERP.sub(b"someone@elsewhere.example", (SAMPLES / "arf_yahoo_abuse.eml").read_bytes())
    raw = raw.replace(b"X-Mailops-Message: 1400", f"X-Mailops-Message: {message.pk}".encode())

    result = bounces.handle_report(raw, envelope_to=f"fbl@{DOMAIN}")

    assert result.outcome == "unmatched"
    assert not Suppression.objects.exists()


def test_the_original_message_id_matches_when_the_verp_address_is_gone():
    message = sent_message("sunny.days@yahoo.com", message_id="<171666354001.1400.9f8e7d6c@example.com>")
    raw = FAKE_VERP.sub(b"someone@elsewhere.example", (SAMPLES / "arf_yahoo_abuse.eml").read_bytes())
    raw = raw.replace(b"X-Mailops-Message: 1400", f"X-Mailops-Message: {message.pk}".encode())

    result = bounces.handle_report(raw, envelope_to=f"fbl@{DOMAIN}")

    assert result.outcome == "recorded"
    assert result.message_id == message.pk


def test_a_message_id_contradicted_by_the_mailops_header_matches_nothing():
    sent_message("sunny.days@yahoo.com", message_id="<171666354001.1400.9f8e7d6c@example.com>")
    raw = FAKE_VERP.sub(b"someone@elsewhere.example", (SAMPLES / "arf_yahoo_abuse.eml").read_bytes())

    result = bounces.handle_report(raw, envelope_to=f"fbl@{DOMAIN}")

    assert result.outcome == "unmatched"


def test_an_out_of_office_reply_is_not_a_report():
    message = sent_message("someone@example.org")
    raw, verp = sample_for("not_a_bounce_out_of_office.eml", message)

    assert bounces.handle_report(raw, envelope_to=verp).outcome == "not-a-report"
    assert not DeliveryEvent.objects.exists()


def test_an_unsubscribe_mailed_to_the_list_unsubscribe_address_suppresses_the_recipient(listener, settings):
    from campaigns.unsubscribe import unsubscribe_mailto

    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsubscribe.example.com"}
    message = sent_message("Leaving@example.org")
    address = unsubscribe_mailto(message_id=message.pk, email=message.to_email)
    # Some MTAs change the case of a local part on the way.
    address = address.removeprefix("mailto:").split("?")[0].upper()
    assert len(address.partition("@")[0]) <= 64
    raw = b"From: leaving@example.org\r\nTo: " + address.encode() + b"\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n"

    deliver(listener, raw, address)
    deliver(listener, raw, address)

    assert Suppression.objects.get().reason == Suppression.Reason.UNSUBSCRIBE
    assert DeliveryEvent.objects.get(message=message).kind == "unsubscribed"


def test_a_forged_unsubscribe_token_unsubscribes_nobody(settings):
    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsubscribe.example.com"}

    result = bounces.handle_mailto_unsubscribe("u-WyJ2aWN0aW1AZXhhbXBsZS5vcmciLG51bGwsbnVsbF0.forged@unsubscribe.example.com")

    assert result.outcome == "unmatched"
    assert not Suppression.objects.exists()


def test_a_mailto_address_with_a_forged_mac_unsubscribes_nobody(settings):
    from campaigns.unsubscribe import unsubscribe_mailto

    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsubscribe.example.com"}
    victim = sent_message("victim@example.org")
    mine = sent_message("mallory@example.org")
    # Mallory's own valid address, with the message id changed to the victim's.
    address = unsubscribe_mailto(message_id=mine.pk, email=mine.to_email).removeprefix("mailto:").split("?")[0]
    address = address.replace(f"u-{mine.pk}-", f"u-{victim.pk}-")

    result = bounces.handle_mailto_unsubscribe(address)

    assert result.outcome == "unmatched"
    assert not Suppression.objects.exists()


def test_an_unsubscribe_mailed_to_an_address_from_before_the_short_form_still_works(settings):
    from campaigns.unsubscribe import make_token

    settings.MAILOPS = {**settings.MAILOPS, "UNSUBSCRIBE_MAILTO_DOMAIN": "unsubscribe.example.com"}
    message = sent_message("leaving@example.org")
    token = make_token(email=message.to_email, message_id=message.pk, campaign_id=None)

    result = bounces.handle_mailto_unsubscribe(f"u-{token}@unsubscribe.example.com")

    assert result.outcome == "recorded"
    assert Suppression.objects.get().email == "leaving@example.org"


def test_a_bounce_that_overtakes_its_batch_still_bounces_the_message(campaign):
    from campaigns import outcomes
    from servers.outcome import Category as Cat
    from servers.outcome import Outcome, Status

    message = sent_message("gone@example.org", campaign=campaign, status=MessageStatus.SENDING)
    Campaign.objects.filter(pk=campaign.pk).update(sent=0)

    result = bounces.handle_report(
        dsn(message, action="failed", status="5.1.1", diagnostic="550 5.1.1 User unknown"),
        envelope_to=verp_return_path(message.pk, DOMAIN),
    )
    # The batch finishes afterwards and reports the relay's 250 for the same message.
    accepted = Outcome(status=Status.ACCEPTED, category=Cat.NONE, code=250, enhanced="2.0.0", text="OK")
    outcomes.record(server=message.server, day=sending_day(SENT_AT), attempts=[outcomes.Attempt(message, accepted)])

    assert result.outcome == "recorded"
    message.refresh_from_db()
    campaign.refresh_from_db()
    assert message.status == MessageStatus.BOUNCED
    assert (campaign.sent, campaign.bounced) == (0, 1)
    row = day_stat(message)
    assert (row.sent, row.bounced, row.returned) == (1, 1, 1)
    assert Suppression.objects.get().reason == Suppression.Reason.HARD_BOUNCE
