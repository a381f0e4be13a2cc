"""A worker killed mid-campaign: its leases expire, and the campaign completes with nothing lost or doubled."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from campaigns import services
from campaigns.models import Campaign, Message, MessageStatus
from servers.relay import Faults
from tests.support.celery_worker import celery_worker  # noqa: F401
from tests.support.pipeline import campaign, drive, prospect_list, received, relay_server, status_counts

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# Short, so the test waits little for the dead worker's leases, yet well above the ~2 s a
# batch takes: a lease must outlast any batch of a live worker (see campaigns/dispatch.py).
LEASE_SECONDS = 15
BATCH_SIZE = 40


@pytest.fixture
def worker_overrides() -> dict[str, int]:
    return {"LEASE_SECONDS": LEASE_SECONDS, "BATCH_SIZE": BATCH_SIZE}


@pytest.fixture(autouse=True)
def short_leases(settings):
    settings.MAILOPS = {
        **settings.MAILOPS,
        "LEASE_SECONDS": LEASE_SECONDS,
        "BATCH_SIZE": BATCH_SIZE,
        "DISPATCH_MAX_IN_FLIGHT": 2 * BATCH_SIZE,
    }


def test_a_campaign_survives_a_worker_killed_mid_batch(celery_worker, relay_factory):
    # Every final reply takes a little while, so the kill lands in the middle of batches.
    slow = Faults(slow=1.0, slow_delay=0.03, slow_on=frozenset({"data"}))
    relays = [relay_factory(faults=slow), relay_factory(faults=slow)]
    for n, relay in enumerate(relays, start=1):
        relay_server(n, relay)
    spring = services.campaign_start(campaign=campaign(prospect_list(600)))

    on_the_wire = Message.objects.filter(campaign=spring, status=MessageStatus.SENDING, sent_at__isnull=False)
    # Kill once a good share has gone out and while a batch is handing messages to a relay.
    drive(spring, interval=0.02, until=lambda: sum(received(relays).values()) >= 150 and on_the_wire.exists())
    celery_worker.kill()
    in_flight = Message.objects.filter(campaign=spring, status=MessageStatus.SENDING).count()
    assert in_flight > 0, "the worker was killed while it held claimed messages"
    # Handed to a relay, outcome never recorded: these must end unknown, and never go out again.
    handed_over = set(
        Message.objects.filter(campaign=spring, status=MessageStatus.SENDING, sent_at__isnull=False).values_list(
            "to_email", flat=True
        )
    )
    assert handed_over, "the kill landed while messages were on the wire"
    received_at_kill = sum(received(relays).values())

    time.sleep(0.5)
    assert sum(received(relays).values()) == received_at_kill, "nothing sends while no worker runs"
    celery_worker.start()
    spring = drive(spring, timeout=180)

    assert spring.status == Campaign.Status.DONE
    statuses = status_counts(spring)
    assert set(statuses) <= {MessageStatus.SENT, MessageStatus.UNKNOWN}
    assert statuses[MessageStatus.SENT] + statuses[MessageStatus.UNKNOWN] == 600
    assert spring.sent == statuses[MessageStatus.SENT]
    assert spring.unknown == statuses[MessageStatus.UNKNOWN] == len(handed_over)
    assert set(Message.objects.filter(campaign=spring, status=MessageStatus.UNKNOWN).values_list("to_email", flat=True)) == handed_over

    got = received(relays)
    addresses = dict(Message.objects.filter(campaign=spring).values_list("to_email", "status"))
    # 0 lost: every message recorded as sent reached a relay exactly once.
    assert all(got[a] == 1 for a, status in addresses.items() if status == MessageStatus.SENT)
    # 0 duplicates: nobody got the message twice; the unknowns are counted, never resent.
    assert [a for a, n in got.items() if n > 1] == []
    assert all(got[a] <= 1 for a, status in addresses.items() if status == MessageStatus.UNKNOWN)
    # 0 lost: a message that never reached a relay is not written off as unknown. One mark per
    # message, written just before it leaves, so only a process killed between its mark and its
    # payload leaves one behind: at most one for each of the worker's 2 processes.
    never_left = [a for a, status in addresses.items() if status == MessageStatus.UNKNOWN and got[a] == 0]
    assert len(never_left) <= 2
    assert Counter(got.values())[1] >= statuses[MessageStatus.SENT]
