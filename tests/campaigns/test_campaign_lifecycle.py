"""Pause, resume and cancel against a real worker and relay."""

from __future__ import annotations

import time

import pytest

from campaigns import dispatch, services
from campaigns.models import Campaign, Message, MessageStatus
from mailops.errors import DomainError
from servers.relay import Faults
from tests.support.celery_worker import celery_worker  # noqa: F401
from tests.support.pipeline import campaign, drive, prospect_list, received, relay_server, status_counts

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BATCH_SIZE = 20


@pytest.fixture
def worker_overrides() -> dict[str, int]:
    return {"BATCH_SIZE": BATCH_SIZE}


@pytest.fixture(autouse=True)
def small_batches(settings):
    settings.MAILOPS = {**settings.MAILOPS, "BATCH_SIZE": BATCH_SIZE, "DISPATCH_MAX_IN_FLIGHT": 2 * BATCH_SIZE}


@pytest.fixture
def slow_relay(relay_factory):
    relay = relay_factory(faults=Faults(slow=1.0, slow_delay=0.02, slow_on=frozenset({"data"})))
    relay_server(1, relay)
    return relay


def wait_until_nothing_in_flight(spring: Campaign, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while Message.objects.filter(campaign=spring, status=MessageStatus.SENDING).exists():
        assert time.monotonic() < deadline, "batches on the wire did not finish"
        dispatch.run_once()
        time.sleep(0.1)


def test_pause_stops_new_claims_at_once_and_resume_continues_where_it_stopped(celery_worker, slow_relay):
    spring = services.campaign_start(campaign=campaign(prospect_list(200)))
    drive(spring, until=lambda: len(slow_relay.messages) >= 40)

    spring = services.campaign_pause(campaign=spring)
    assert spring.status == Campaign.Status.PAUSED
    assert dispatch.run_once().claimed == {}
    wait_until_nothing_in_flight(spring)
    sent_when_paused = len(slow_relay.messages)
    queued_when_paused = status_counts(spring)[MessageStatus.QUEUED]
    assert 40 <= sent_when_paused < 200 and queued_when_paused > 0

    for _ in range(10):
        assert dispatch.run_once().claimed == {}
        time.sleep(0.1)
    assert len(slow_relay.messages) == sent_when_paused
    assert status_counts(spring)[MessageStatus.QUEUED] == queued_when_paused

    spring = services.campaign_resume(campaign=spring)
    assert spring.status == Campaign.Status.RUNNING
    spring = drive(spring)

    assert spring.status == Campaign.Status.DONE and spring.sent == 200
    got = received([slow_relay])
    assert set(got) == {f"agent{i}@agency.test" for i in range(200)}
    assert max(got.values()) == 1


def test_cancel_stops_everything(celery_worker, slow_relay):
    spring = services.campaign_start(campaign=campaign(prospect_list(200)))
    drive(spring, until=lambda: len(slow_relay.messages) >= 40)

    spring = services.campaign_cancel(campaign=spring)
    assert spring.status == Campaign.Status.CANCELLED
    wait_until_nothing_in_flight(spring)
    sent = len(slow_relay.messages)
    for _ in range(10):
        assert dispatch.run_once().claimed == {}
        time.sleep(0.1)

    assert len(slow_relay.messages) == sent
    statuses = status_counts(spring)
    assert set(statuses) == {MessageStatus.SENT, MessageStatus.CANCELLED}
    assert statuses[MessageStatus.SENT] == sent and statuses[MessageStatus.CANCELLED] == 200 - sent
    spring.refresh_from_db()
    assert spring.status == Campaign.Status.CANCELLED and spring.sent == sent
    with pytest.raises(DomainError, match="only a paused campaign can be resumed"):
        services.campaign_resume(campaign=spring)
