"""Starting a campaign: messages are created set-based, with regions and suppression decided in the database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count

from campaigns import services
from campaigns.models import Campaign, Message, MessageStatus, Prospect, Suppression
from mailops.errors import DomainError
from servers.models import Configuration, WarmupSchedule
from servers.routing import region_for
from tests.support.pipeline import campaign, prospect_list

pytestmark = pytest.mark.django_db

RULES = {".com": "US", ".es": "EU", ".eu": "EU", ".com.mx": "LATAM", ".mx": "LATAM", ".br": "LATAM", "co_uk": "ODD"}


@pytest.fixture
def routing():
    return Configuration.objects.create(
        name="geo",
        tier="custom",
        is_active=True,
        server_count=3,
        daily_limit_per_server=500,
        warmup_schedule=WarmupSchedule.objects.first(),
        routing_rules=RULES,
    )


def test_twenty_thousand_recipients_are_created_with_a_handful_of_queries(django_assert_max_num_queries, routing):
    plist = prospect_list(20_000, domain="agencia.es")
    Suppression.objects.bulk_create([Suppression(email=f"agent{i}@agencia.es", reason="manual") for i in range(0, 20_000, 1000)])
    draft = campaign(plist)

    with django_assert_max_num_queries(12) as queries:
        started = services.campaign_start(campaign=draft)

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "SELECT" in inserts[0].upper()
    assert started.status == Campaign.Status.RUNNING and started.started_at is not None
    assert started.total == 20_000 and started.suppressed == 20
    counts = dict(Message.objects.filter(campaign=started).values_list("status").annotate(n=Count("pk")))
    assert counts == {MessageStatus.QUEUED: 19_980, MessageStatus.SUPPRESSED: 20}
    assert set(Message.objects.filter(campaign=started).values_list("region", flat=True)) == {"EU"}


@pytest.mark.parametrize(
    "address",
    [
        "a@agency.com", "a@agency.COM", "a@viajes.com.mx", "a@viajes.mx", "a@mx", "a@tour.es", "a@tour.eu",
        "a@agency.org", "a@x.co_uk", "a@xco_uk.test", "a@xcoXuk", "b.es@agency.org", "a@agency.br",
    ],
)
def test_the_database_picks_the_same_region_as_region_for(routing, address):
    plist = services.list_create(name="regions")
    Prospect.objects.create(prospect_list=plist, email=address)

    started = services.campaign_start(campaign=campaign(plist))

    assert Message.objects.get(campaign=started).region == region_for(address, RULES)


def test_suppressed_addresses_match_whatever_their_case():
    plist = prospect_list(5)
    Prospect.objects.filter(email="agent2@agency.test").update(email="Agent2@Agency.TEST")
    Suppression.objects.create(email="agent2@agency.test", reason="unsubscribe")

    started = services.campaign_start(campaign=campaign(plist))

    assert Message.objects.get(campaign=started, to_email="Agent2@Agency.TEST").status == MessageStatus.SUPPRESSED
    assert started.suppressed == 1 and started.total == 5


def test_a_campaign_starts_only_once():
    draft = campaign(prospect_list(3))
    services.campaign_start(campaign=draft)

    with pytest.raises(DomainError, match="only a draft campaign can be started; this one is running"):
        services.campaign_start(campaign=draft)
    assert Message.objects.count() == 3


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": "Hello\r\nBcc: everyone@example.com"}, "subject"),
        ({"from_name": "Sales\nTeam"}, "from_name"),
        ({"reply_to": "a@b.example\r\nX: y"}, "reply_to"),
        ({"from_email": "not an address"}, "from_email"),
        ({"subject": "   "}, "subject"),
        ({"html_body": "", "text_body": ""}, "html_body"),
        ({"daily_max": 0}, "daily_max"),
    ],
)
def test_bad_content_is_refused_with_the_field_to_fix(changes, field):
    plist = prospect_list(1)

    with pytest.raises(DomainError) as error:
        campaign(plist, **changes)

    assert error.value.field == field


def test_a_running_campaign_keeps_its_content_until_paused():
    spring = services.campaign_start(campaign=campaign(prospect_list(2)))

    with pytest.raises(DomainError, match="pause it first"):
        services.campaign_update(campaign=spring, subject="New subject")
    spring = services.campaign_update(campaign=spring, daily_max=100)
    paused = services.campaign_pause(campaign=spring)
    paused = services.campaign_update(campaign=paused, subject="New {{ company }}")

    assert paused.subject == "New {{ company }}" and paused.daily_max == 100
    with pytest.raises(DomainError, match="prospect_list cannot change"):
        services.campaign_update(campaign=paused, prospect_list=prospect_list(1, name="Other"))


def test_a_mailbox_imported_twice_in_different_case_gets_the_campaign_once(settings, tmp_path):
    import io

    from campaigns import importer

    settings.MEDIA_ROOT = tmp_path / "media"
    plist = services.list_create(name="Twice")
    for data in (b"email,name\r\nana@example.com,\r\n", b"email,name\r\nAna@example.com,Ana\r\nANA@EXAMPLE.COM,\r\n"):
        job = services.import_create(prospect_list=plist, upload=io.BytesIO(data), filename="ana.csv", run_async=False)
        importer.run_import(job=job)

    started = services.campaign_start(campaign=campaign(plist))

    assert started.total == 1
    assert list(Message.objects.filter(campaign=started).values_list("to_email", "to_name")) == [
        ("ana@example.com", "Ana")
    ]


def test_messages_are_due_from_the_very_instant_the_campaign_starts():
    # Stored as the ORM stores times: on SQLite a raw "…+00:00" sorted after the ORM's "…" for the same instant.
    import time_machine
    from django.utils import timezone

    with time_machine.travel(dt.datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=dt.UTC), tick=False):
        started = services.campaign_start(campaign=campaign(prospect_list(3)))
        due = Message.objects.filter(campaign=started, status=MessageStatus.QUEUED, next_attempt_at__lte=timezone.now())
        assert due.count() == 3
        assert Message.objects.filter(campaign=started, created_at=timezone.now()).count() == 3
