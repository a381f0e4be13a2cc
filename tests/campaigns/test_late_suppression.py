"""An address suppressed while its batch is already sending is not sent to from then on."""

from __future__ import annotations

import pytest

from campaigns import outcomes, sender, suppression
from campaigns.models import Message, MessageStatus, Suppression
from campaigns.sender import send_batch
from servers import pacing, quota
from servers.daytime import sending_day
from tests.support.engine import claim, make_campaign, make_server, recipients_of

pytestmark = pytest.mark.django_db


def test_a_paced_batch_checks_the_list_again_before_each_message(relay, monkeypatch):
    server = make_server(relay, min_delay=0.05)
    campaign = make_campaign(["a@example.com", "b@example.com", "c@example.com"])
    messages = claim(campaign, server=server)
    day = sending_day()
    quota.reserve(server, 3, day=day)
    real_wait = pacing.wait_until
    waits = []

    def wait_and_unsubscribe_c(at):
        real_wait(at)
        waits.append(at)
        if len(waits) == 2:
            # c unsubscribes while b is leaving, minutes after the batch started on a slow pool.
            suppression.suppress("c@example.com", reason=Suppression.Reason.UNSUBSCRIBE, source="test")

    monkeypatch.setattr(pacing, "wait_until", wait_and_unsubscribe_c)
    result = send_batch(server=server, messages=messages, day=day)

    assert recipients_of(relay) == ["a@example.com", "b@example.com"]
    assert Message.objects.get(to_email="c@example.com").status == MessageStatus.SUPPRESSED
    assert result.counts[MessageStatus.SUPPRESSED] == 1
    assert quota.used_today([server.pk], day)[server.pk][0] == 2  # c's slot went back


def test_an_unpaced_batch_checks_the_list_again_at_every_chunk(relay, monkeypatch):
    server = make_server(relay)
    addresses = [f"agent{i}@example.com" for i in range(5)]
    campaign = make_campaign(addresses)
    messages = claim(campaign, server=server)
    day = sending_day()
    quota.reserve(server, 5, day=day)
    monkeypatch.setattr(sender, "FLUSH_EVERY", 2)
    real_record = outcomes.record
    flushes = []

    def record_then_unsubscribe(**kwargs):
        recorded = real_record(**kwargs)
        flushes.append(kwargs)
        if len(flushes) == 1:
            suppression.suppress("agent4@example.com", reason=Suppression.Reason.COMPLAINT, source="test")
        return recorded

    monkeypatch.setattr(outcomes, "record", record_then_unsubscribe)
    send_batch(server=server, messages=messages, day=day)

    assert recipients_of(relay) == addresses[:4]
    assert Message.objects.get(to_email="agent4@example.com").status == MessageStatus.SUPPRESSED
