"""A scheduled campaign: started ahead of its time, the dispatcher leaves it alone until then,
and from that second on claims it and its batches reach a real relay.

Tasks run inline (the dispatch kick after a start, the send-batch tasks after a claim), so
the whole run shares the test's clock, which time_machine moves. The due run is given its
`now` (the scheduled second itself) while the clock stands a second later: a batch task must
not read the very instant its claim was made, since its fresh lease would then equal the
claim's lease token (campaigns/dispatch.take_batch) and it would hand the batch back.
"""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, Message, MessageStatus
from tests.support.pipeline import campaign, prospect_list, received, relay_server, status_counts

pytestmark = pytest.mark.django_db(transaction=True)

RECIPIENTS = 12


@pytest.fixture(autouse=True)
def eager_tasks(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True


def dispatch_run(now: dt.datetime | None = None) -> dispatch.DispatchReport:
    report = dispatch.run_once(now=now)
    assert report.ran, "another dispatcher held the lock"
    return report


def test_a_scheduled_campaign_is_not_claimed_before_its_time_and_goes_out_once_it_passes(relay):
    server = relay_server(1, relay)
    at = (timezone.now() + dt.timedelta(hours=3)).replace(microsecond=0)
    spring = services.campaign_start(campaign=campaign(prospect_list(RECIPIENTS), scheduled_at=at))

    # Started (its messages exist and wait), but the kick that followed the start claimed nothing.
    assert spring.status == Campaign.Status.RUNNING and spring.scheduled_at == at
    assert status_counts(spring) == {MessageStatus.QUEUED: RECIPIENTS}
    assert dispatch_run().claimed == {}

    with time_machine.travel(at - dt.timedelta(seconds=1), tick=False):
        early = dispatch_run()
    assert early.claimed == {} and early.finished_campaigns == []
    assert status_counts(spring) == {MessageStatus.QUEUED: RECIPIENTS}
    assert relay.messages == []

    with time_machine.travel(at + dt.timedelta(seconds=1), tick=True):
        # Due from its very second on; the batch task runs (inline) as the claim commits.
        due = dispatch_run(now=at)
        done = dispatch_run()

    assert due.claimed == {server.pk: RECIPIENTS}
    assert done.finished_campaigns == [spring.pk]
    spring.refresh_from_db()
    assert spring.status == Campaign.Status.DONE and spring.sent == RECIPIENTS
    assert spring.finished_at >= at
    assert status_counts(spring) == {MessageStatus.SENT: RECIPIENTS}
    got = received([relay])
    assert set(got) == {f"agent{i}@agency.test" for i in range(RECIPIENTS)} and max(got.values()) == 1
    first_sent = Message.objects.filter(campaign=spring).order_by("sent_at").values_list("sent_at", flat=True)[0]
    assert first_sent >= at


def test_rescheduling_a_running_campaign_later_holds_its_mail_until_the_new_time(relay):
    server = relay_server(1, relay)
    spring = services.campaign_start(campaign=campaign(prospect_list(RECIPIENTS), daily_max=5))
    assert status_counts(spring) == {MessageStatus.SENT: 5, MessageStatus.QUEUED: RECIPIENTS - 5}

    later = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    spring = services.campaign_update(campaign=spring, scheduled_at=later)

    with time_machine.travel(later - dt.timedelta(minutes=1), tick=False):
        # A new sending day, so the daily maximum is free again: only the schedule holds the mail.
        assert dispatch_run().claimed == {}
    assert len(relay.messages) == 5

    with time_machine.travel(later + dt.timedelta(seconds=1), tick=True):
        assert dispatch_run(now=later).claimed == {server.pk: 5}
    assert status_counts(spring) == {MessageStatus.SENT: 10, MessageStatus.QUEUED: RECIPIENTS - 10}
    assert len(relay.messages) == 10
