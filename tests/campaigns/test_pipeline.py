"""The sending pipeline end to end: dispatcher, a real Celery worker, real SMTP relays on loopback."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from django.conf import settings
from django.db.models import Sum

from campaigns import services
from campaigns.headers import parse_verp
from campaigns.models import Campaign, Message, MessageStatus
from servers.models import Server
from servers.relay import Faults
from tests.support.celery_worker import celery_worker, worker_overrides  # noqa: F401
from tests.support.pipeline import campaign, drive, prospect_list, received, relay_server, status_counts

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_campaign_over_five_relays_reaches_every_recipient_exactly_once(celery_worker, relay_factory):
    relays = [relay_factory(name=f"relay-{n}", seed=n) for n in range(1, 6)]
    relays[3].set_down()
    relays[4].set_faults(Faults(fail_4xx=0.2))
    servers = [relay_server(n, relay) for n, relay in enumerate(relays, start=1)]
    plist = prospect_list(2000)
    spring = services.campaign_start(campaign=campaign(plist))
    assert spring.total == 2000

    spring = drive(spring, timeout=180)

    assert spring.status == Campaign.Status.DONE
    got = received(relays)
    expected = {f"agent{i}@agency.test" for i in range(2000)}
    assert set(got) == expected
    assert [address for address, n in got.items() if n != 1] == []
    assert status_counts(spring) == {MessageStatus.SENT: 2000}
    assert spring.sent == 2000 and spring.unknown == 0 and spring.failed == 0
    # The deferring relay deferred some messages, and they were retried until sent.
    assert spring.deferred > 0
    attempts = Message.objects.filter(campaign=spring).aggregate(n=Sum("attempts"))["n"]
    assert attempts == 2000 + spring.deferred
    assert Message.objects.filter(campaign=spring, attempts__gt=1).exists()
    # The down relay got nothing, its server was taken out of rotation, and the others shared the load.
    assert relays[3].messages == []
    assert Server.objects.get(pk=servers[3].pk).suspect_until is not None
    for relay in (relays[0], relays[1], relays[2], relays[4]):
        assert len(relay.messages) > 300


def test_received_messages_carry_well_formed_compliance_headers(celery_worker, relay_factory):
    relay = relay_factory()
    relay_server(1, relay)
    spring = services.campaign_start(campaign=campaign(prospect_list(25)))
    drive(spring)

    messages = relay.messages
    assert len(messages) == 25
    message_ids = set()
    for received_message in messages:
        parsed = message_from_bytes(received_message.data, policy=default_policy)
        (recipient,) = received_message.rcpt_tos
        row = Message.objects.get(campaign=spring, to_email=recipient)

        unsubscribe = str(parsed["List-Unsubscribe"])
        match = re.fullmatch(r"<(https?://[^>]+/u/[^>/]+/)>,\s*<(mailto:[^>]+)>", unsubscribe)
        assert match, unsubscribe
        url, mailto = match.groups()
        assert url.startswith(settings.MAILOPS["PUBLIC_BASE_URL"])
        assert mailto.endswith("@" + settings.MAILOPS["UNSUBSCRIBE_MAILTO_DOMAIN"] + "?subject=unsubscribe")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        text = parsed.get_body(preferencelist=("plain",)).get_content()
        html = parsed.get_body(preferencelist=("html",)).get_content()
        assert url in text and url in html, "the body shows the same unsubscribe link"
        assert settings.MAILOPS["POSTAL_ADDRESS"] in text
        assert "Hello Agent" in text and row.to_name in html

        message_id = parsed["Message-ID"]
        assert re.fullmatch(r"<[^<>@\s]+@mailops\.test>", message_id)
        assert message_id == row.message_id
        message_ids.add(message_id)

        assert parsed["From"].addresses[0].addr_spec == "sales@mailops.test"
        assert parsed["To"].addresses[0].addr_spec == recipient
        assert parsed["Reply-To"].addresses[0].addr_spec == "replies@mailops.test"
        assert parsed["Subject"] == f"Rates for {row.prospect.company}"
        assert parsed["Date"] is not None

        # VERP: the envelope sender names this very message, and a forged one names nothing.
        assert received_message.mail_from.endswith("@" + settings.MAILOPS["BOUNCE_DOMAIN"])
        assert parse_verp(received_message.mail_from) == row.pk
    assert len(message_ids) == 25


def test_suppressed_addresses_receive_nothing(celery_worker, relay_factory):
    from campaigns.suppression import suppress

    relays = [relay_factory(), relay_factory()]
    for n, relay in enumerate(relays, start=1):
        relay_server(n, relay)
    plist = prospect_list(60)
    before = {f"agent{i}@agency.test" for i in range(0, 60, 6)}  # suppressed before the start
    for address in before:
        suppress(address.upper(), reason="manual", source="test")
    spring = services.campaign_start(campaign=campaign(plist))
    assert spring.suppressed == len(before)
    during = {f"agent{i}@agency.test" for i in range(1, 60, 10)}  # suppressed after the start
    for address in during:
        suppress(address, reason="unsubscribe", source="test")

    spring = drive(spring)

    got = received(relays)
    assert not (set(got) & (before | during))
    assert set(got) == {f"agent{i}@agency.test" for i in range(60)} - before - during
    assert spring.sent == 60 - len(before | during)
    assert spring.suppressed == len(before | during)
    assert status_counts(spring)[MessageStatus.SUPPRESSED] == len(before | during)


def test_an_uploaded_file_is_imported_by_the_worker(celery_worker):
    import io
    import time

    from campaigns.models import ImportJob, Prospect

    plist = services.list_create(name="Uploaded")
    data = "email,name,company\r\n" + "".join(f"agent{i}@viajes-sol.es,Agent {i},Sol {i}\r\n" for i in range(300))

    job = services.import_create(prospect_list=plist, upload=io.BytesIO(data.encode()), filename="agencies.csv")

    deadline = time.monotonic() + 60
    while job.status in (ImportJob.Status.PENDING, ImportJob.Status.RUNNING):
        assert time.monotonic() < deadline, f"import still {job.status}"
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.rows_imported == 300
    assert Prospect.objects.filter(prospect_list=plist).count() == 300
