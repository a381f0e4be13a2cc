"""The dispatcher on its own: single flight, quotas, priorities, regions, campaign states, leases."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import pytest
from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, DeliveryEvent, DispatchLock, Message, MessageStatus, Prospect
from servers.daytime import sending_day
from servers.models import Configuration, Quota, RotationStrategy, Server, ServerDailyStat, ServerKind, ServerState
from tests.support.pipeline import campaign, prospect_list

pytestmark = pytest.mark.django_db


def server(slot: int, **fields) -> Server:
    values = {
        "kind": ServerKind.SMTP, "name": f"SMTP Server {slot}", "host": "127.0.0.1", "port": 2500 + slot,
        "security": "none", "state": ServerState.ACTIVE, "warmup_enabled": False, "daily_limit": 1000,
    }
    values.update(fields)
    return Server.objects.create(slot=slot, **values)


def configure(**fields) -> Configuration:
    from servers.models import WarmupSchedule

    values = {"name": "test", "tier": "custom", "is_active": True, "server_count": 3, "daily_limit_per_server": 500,
              "warmup_schedule": WarmupSchedule.objects.first()}
    values.update(fields)
    return Configuration.objects.create(**values)


def started(count: int, **fields) -> Campaign:
    return services.campaign_start(campaign=campaign(prospect_list(count, name=f"list {random.random()}"), **fields))


def claimed_by_server() -> Counter[str]:
    return Counter(
        Message.objects.filter(status=MessageStatus.SENDING).values_list("server__name", flat=True)
    )


def test_only_one_dispatcher_runs_at_a_time():
    assert dispatch.acquire_lock("first")
    assert not dispatch.acquire_lock("second")
    assert dispatch.run_once().ran is False

    dispatch.release_lock("first")
    assert dispatch.run_once().ran is True


def test_a_crashed_dispatchers_lock_lapses():
    past = timezone.now() - dt.timedelta(minutes=5)
    assert dispatch.acquire_lock("crashed", now=past, seconds=30)

    assert dispatch.acquire_lock("next")
    assert DispatchLock.objects.get().holder == "next"


def test_a_server_gets_no_more_than_its_quota_left_today():
    one = server(1, daily_limit=10)
    Quota.objects.create(server=one, day=sending_day(), cap=10, used=3)
    started(50)

    first = dispatch.run_once()
    second = dispatch.run_once()

    assert first.claimed == {one.pk: 7} and second.claimed == {}
    assert Quota.objects.get(server=one).used == 10


def test_round_robin_shares_due_mail_evenly():
    servers = [server(n) for n in (1, 2, 3)]
    started(30)

    report = dispatch.run_once()

    assert report.claimed == {s.pk: 10 for s in servers}


def test_round_robin_spreads_a_trickle_of_one_message_per_run():
    configure()
    servers = [server(n) for n in (1, 2, 3)]
    took: list[int] = []

    for n in range(6):
        Message.objects.create(to_email=f"single{n}@example.com", status=MessageStatus.QUEUED)
        report = dispatch.run_once()
        [server_id] = report.claimed
        took.append(server_id)
        # Sent meanwhile, as its batch would: every run sees one new message and nothing in flight.
        Message.objects.filter(status=MessageStatus.SENDING).update(status=MessageStatus.SENT)

    # Each run picks up where the last one left off instead of starting again at server 1.
    assert Counter(took) == {s.pk: 2 for s in servers}


def test_an_idle_dispatcher_leaves_the_round_robin_cursor_alone():
    config = configure()
    server(1)

    dispatch.run_once()

    config.refresh_from_db()
    assert config.rr_cursor == 0


def test_best_performance_fills_the_best_server_first():
    configure(rotation_strategy=RotationStrategy.BEST_PERFORMANCE)
    best = server(1, reputation=99, daily_limit=20)
    server(2, reputation=70)
    started(30)

    report = dispatch.run_once()

    assert report.claimed[best.pk] == 20 and sum(report.claimed.values()) == 30


def test_priority_two_only_takes_what_priority_one_cannot_today():
    primary = server(1, daily_limit=5)
    overflow = server(2, priority=2, kind=ServerKind.SMTP, name="Overflow")
    started(20)

    report = dispatch.run_once()

    assert report.claimed == {primary.pk: 5, overflow.pk: 15}


def test_priority_two_gets_nothing_while_priority_one_is_only_busy(settings):
    settings.MAILOPS = {**settings.MAILOPS, "DISPATCH_MAX_IN_FLIGHT": 4}
    primary = server(1)
    server(2, priority=2, name="Overflow")
    started(20)

    assert dispatch.run_once().claimed == {primary.pk: 4}
    assert dispatch.run_once().claimed == {}


def test_a_paced_server_gets_one_horizon_of_work(settings):
    settings.MAILOPS = {**settings.MAILOPS, "DISPATCH_HORIZON_SECONDS": 60}
    slow = server(1, min_delay_seconds=2)
    started(100)

    assert dispatch.run_once().claimed == {slow.pk: 30}


def test_down_paused_and_suspect_servers_get_nothing():
    server(1, state=ServerState.DOWN)
    server(2, state=ServerState.PAUSED_BLOCKLISTED)
    server(3, state=ServerState.PAUSED_MANUAL)
    server(4, suspect_until=timezone.now() + dt.timedelta(minutes=1))
    server(5, in_pool=False)
    started(10)

    assert dispatch.run_once().claimed == {}


def test_paused_scheduled_and_cancelled_campaigns_are_not_claimed():
    one = server(1)
    paused = started(5)
    services.campaign_pause(campaign=paused)
    later = started(5, scheduled_at=timezone.now() + dt.timedelta(hours=1))
    cancelled = started(5)
    services.campaign_cancel(campaign=cancelled)
    running = started(5)

    report = dispatch.run_once()

    assert report.claimed == {one.pk: 5}
    assert set(Message.objects.filter(status=MessageStatus.SENDING).values_list("campaign", flat=True)) == {running.pk}
    assert Message.objects.filter(campaign=later, status=MessageStatus.QUEUED).count() == 5


def test_two_running_campaigns_share_the_pool():
    server(1, daily_limit=10)
    first, second = started(50), started(50)

    dispatch.run_once()

    sending = Counter(Message.objects.filter(status=MessageStatus.SENDING).values_list("campaign", flat=True))
    assert sending == {first.pk: 5, second.pk: 5}


def test_a_campaigns_daily_maximum_counts_recipients_first_tried_today():
    server(1)
    capped = started(20, daily_max=7)
    Message.objects.filter(pk__in=Message.objects.filter(campaign=capped).values("pk")[:3]).update(
        status=MessageStatus.DEFERRED, attempts=1, first_attempt_at=timezone.now() - dt.timedelta(days=1)
    )

    dispatch.run_once()

    sending = Message.objects.filter(campaign=capped, status=MessageStatus.SENDING)
    # The three retries from yesterday are free; seven new recipients fill today's maximum.
    assert sending.filter(first_attempt_at__isnull=False).count() == 3
    assert sending.filter(first_attempt_at__isnull=True).count() == 7
    Message.objects.filter(campaign=capped, status=MessageStatus.SENDING).update(
        status=MessageStatus.SENT, first_attempt_at=timezone.now()
    )
    assert dispatch.run_once().claimed == {}


def test_strict_routing_holds_mail_for_a_region_without_servers():
    configure(routing_rules={".es": "EU", ".com": "US"}, strict_routing=True)
    us = server(1, region="US")
    plist = services.list_create(name="mixed")
    Prospect.objects.bulk_create(
        [Prospect(prospect_list=plist, email=f"a{i}@agencia.es") for i in range(5)]
        + [Prospect(prospect_list=plist, email=f"b{i}@agency.com") for i in range(5)]
    )
    services.campaign_start(campaign=campaign(plist))

    assert dispatch.run_once().claimed == {us.pk: 5}
    assert set(Message.objects.filter(status=MessageStatus.QUEUED).values_list("region", flat=True)) == {"EU"}

    Configuration.objects.update(strict_routing=False)
    assert dispatch.run_once().claimed == {us.pk: 5}


def test_deferred_messages_wait_for_their_retry_time():
    one = server(1)
    spring = started(4)
    Message.objects.filter(campaign=spring, to_email__in=["agent0@agency.test", "agent1@agency.test"]).update(
        status=MessageStatus.DEFERRED, next_attempt_at=timezone.now() + dt.timedelta(minutes=5)
    )

    assert dispatch.run_once().claimed == {one.pk: 2}
    later = timezone.now() + dt.timedelta(minutes=6)
    Quota.objects.update(used=0)
    assert dispatch.run_once(now=later).claimed == {one.pk: 2}


def test_the_claims_take_the_same_few_queries_however_long_the_queue(django_assert_max_num_queries):
    for n in (1, 2, 3):
        server(n, daily_limit=100_000)
    started(3000)

    with django_assert_max_num_queries(40):
        report = dispatch.run_once()

    assert report.total_claimed == 2400  # three servers × the in-flight ceiling of four batches


def test_an_expired_lease_puts_unsent_messages_back_and_counts_handed_over_ones_as_unknown():
    one = server(1)
    spring = started(6)
    dispatch.run_once()
    handed = list(Message.objects.filter(campaign=spring).order_by("pk").values_list("pk", flat=True)[:2])
    Message.objects.filter(pk__in=handed).update(sent_at=timezone.now())
    Message.objects.filter(status=MessageStatus.SENDING).update(lease_expires_at=timezone.now() - dt.timedelta(seconds=1))

    report = dispatch.run_once()

    statuses = dict(Message.objects.filter(campaign=spring).values_list("pk", "status"))
    assert [statuses[pk] for pk in handed] == [MessageStatus.UNKNOWN] * 2
    assert report.reclaimed == 4
    spring.refresh_from_db()
    assert spring.unknown == 2
    assert DeliveryEvent.objects.filter(kind=DeliveryEvent.Kind.UNKNOWN, message_id__in=handed).count() == 2
    assert ServerDailyStat.objects.get(server=one).unknown == 2
    assert Message.objects.filter(campaign=spring, attempts__gt=0).count() == 0
    # The four put back were claimed again in the same run.
    assert report.claimed == {one.pk: 4}


def test_a_batch_takes_only_rows_that_still_carry_its_lease():
    one = server(1)
    spring = started(6)
    claims = dispatch.claim_due()
    ids = claims[one.pk]
    lease = Message.objects.filter(pk=ids[0]).values_list("lease_expires_at", flat=True).get()

    stale = dispatch.take_batch(server_id=one.pk, message_ids=ids, lease=lease - dt.timedelta(seconds=1), day=sending_day())
    taken = dispatch.take_batch(server_id=one.pk, message_ids=ids, lease=lease, day=sending_day())
    again = dispatch.take_batch(server_id=one.pk, message_ids=ids, lease=lease, day=sending_day())

    assert stale.taken == [] and again.taken == []
    assert sorted(m.pk for m in taken.taken) == sorted(ids)
    assert all(m.lease_expires_at > lease or m.lease_expires_at >= timezone.now() for m in taken.taken)
    assert spring.pk == taken.taken[0].campaign_id


def test_a_batch_hands_back_the_messages_of_a_campaign_paused_since_the_claim():
    one = server(1)
    paused, cancelled = started(4), started(4)
    claims = dispatch.claim_due()
    lease = Message.objects.filter(pk=claims[one.pk][0]).values_list("lease_expires_at", flat=True).get()
    services.campaign_pause(campaign=paused)
    services.campaign_cancel(campaign=cancelled)

    handover = dispatch.take_batch(server_id=one.pk, message_ids=claims[one.pk], lease=lease, day=sending_day())

    assert handover.taken == [] and handover.returned == 4 and handover.cancelled == 4
    assert Message.objects.filter(campaign=paused, status=MessageStatus.QUEUED).count() == 4
    assert Message.objects.filter(campaign=cancelled, status=MessageStatus.CANCELLED).count() == 4
    assert Quota.objects.get(server=one).used == 0


def test_a_campaign_with_nothing_left_is_done():
    server(1)
    spring = started(3)
    Message.objects.filter(campaign=spring).update(status=MessageStatus.SENT)

    report = dispatch.run_once()

    spring.refresh_from_db()
    assert report.finished_campaigns == [spring.pk]
    assert spring.status == Campaign.Status.DONE and spring.finished_at is not None


def test_progress_shows_counters_servers_and_an_estimate():
    one = server(1, daily_limit=10)
    spring = started(25)
    dispatch.run_once()
    Message.objects.filter(status=MessageStatus.SENDING).update(status=MessageStatus.SENT)
    Campaign.objects.filter(pk=spring.pk).update(sent=10)

    progress = services.campaign_progress(spring)

    assert (progress["total"], progress["sent"], progress["queued"], progress["remaining"]) == (25, 10, 15, 15)
    assert progress["per_server"] == [{"server_id": one.pk, "server": one.name, "total": 10, "sent": 10}]
    # 15 left at 10 a day, none left today: done early on the second day from now.
    assert progress["estimated_finish"].date() == sending_day() + dt.timedelta(days=2)


def test_the_dispatch_command_runs_once_and_says_what_it_did():
    import io

    from django.core.management import call_command

    one = server(1)
    started(3)
    out = io.StringIO()

    call_command("dispatch", stdout=out)

    assert f"claimed 3 messages in 1 batches (server {one.pk}: 3)" in out.getvalue()


def test_the_loop_dispatches_run_after_run():
    one = server(1, daily_limit=4)
    started(10)

    assert dispatch.run_loop(interval=0, max_runs=2) == 2

    assert Message.objects.filter(status=MessageStatus.SENDING, server=one).count() == 4
    assert Quota.objects.get(server=one).used == 4
