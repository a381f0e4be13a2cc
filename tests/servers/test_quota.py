"""Quota reservations and the warm-up cap, with the sending day in a real time zone."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine

from servers import quota
from servers.configuration import advance_warmup_day
from servers.daytime import sending_day
from servers.models import Quota
from tests.support.engine import make_server

pytestmark = pytest.mark.django_db

MEXICO = zoneinfo.ZoneInfo("America/Mexico_City")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=MEXICO)


def test_it_grants_what_is_left_and_then_nothing():
    server = make_server(daily_limit=10)
    assert quota.reserve(server, 4) == 4
    assert quota.reserve(server, 4) == 4
    assert quota.reserve(server, 4) == 2
    assert quota.reserve(server, 1) == 0
    assert Quota.objects.get(server=server).used == 10


def test_released_reservations_can_be_taken_again():
    server = make_server(daily_limit=5)
    day = sending_day()
    assert quota.reserve(server, 5, day=day) == 5
    quota.release(server.pk, 3, day=day)
    assert quota.reserve(server, 10, day=day) == 3


def test_release_never_drives_the_counter_negative():
    server = make_server(daily_limit=5)
    day = sending_day()
    quota.reserve(server, 1, day=day)
    quota.release(server.pk, 4, day=day)
    assert Quota.objects.get(server=server).used == 1


def test_a_lowered_limit_stops_reservations_already_past_it():
    server = make_server(daily_limit=10)
    assert quota.reserve(server, 8) == 8
    server.daily_limit = 5
    server.save()
    quota.sync_cap(server)
    assert quota.reserve(server, 1) == 0


@pytest.mark.parametrize("block", [1, 7])
def test_a_server_with_the_warm_up_cap_of_50_stops_at_exactly_50(settings, block):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    with time_machine.travel(local(2026, 3, 9, 10, 0), tick=False):
        server = make_server(daily_limit=500, warmup="default-6-day", warmup_started_on=sending_day())
        assert server.cap_for() == 50
        granted = 0
        while (got := quota.reserve(server, block)) > 0:
            granted += got
        assert granted == 50
        assert Quota.objects.get(server=server).used == 50


def test_warm_up_days_turn_at_midnight_in_the_sending_zone(settings):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    with time_machine.travel(local(2026, 3, 9, 23, 59, 59), tick=False) as clock:
        server = make_server(daily_limit=500, warmup="default-6-day", warmup_started_on=dt.date(2026, 3, 9))
        assert quota.reserve(server, 1000) == 50
        # 23:59:59 in Mexico City is already 05:59:59 UTC on the 10th: still day 1 there.
        assert dt.datetime.now(dt.UTC).date() == dt.date(2026, 3, 10)
        assert sending_day() == dt.date(2026, 3, 9)

        clock.move_to(local(2026, 3, 10, 0, 0, 1))
        assert sending_day() == dt.date(2026, 3, 10)
        assert server.warmup_day() == 2
        # A new day brings a new row with the day-2 cap; yesterday's stays as it was.
        assert quota.reserve(server, 1000) == 100
        assert Quota.objects.get(server=server, day=dt.date(2026, 3, 9)).used == 50


def test_a_manual_advance_raises_todays_cap_and_day_6_is_full(settings):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    with time_machine.travel(local(2026, 3, 10, 9, 0), tick=False) as clock:
        server = make_server(daily_limit=500, warmup="default-6-day", warmup_started_on=dt.date(2026, 3, 9))
        assert quota.reserve(server, 1000) == 100  # day 2

        server = advance_warmup_day(server)  # day 3: 200, the 100 used today still counts

        assert server.warmup_day() == 3
        assert quota.reserve(server, 1000) == 100
        assert Quota.objects.get(server=server, day=sending_day()).cap == 200

        clock.move_to(local(2026, 3, 12, 9, 0))  # day 5 with the advance: 400
        assert quota.reserve(server, 1000) == 400
        clock.move_to(local(2026, 3, 13, 9, 0))  # day 6: the full daily limit
        assert server.warmup_day() == 6
        assert not server.in_warmup()
        assert quota.reserve(server, 1000) == 500
        clock.move_to(local(2026, 4, 30, 9, 0))
        assert quota.reserve(server, 1000) == 500
