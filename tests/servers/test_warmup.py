from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import time_machine

from servers import configuration, quota
from servers.daytime import sending_day
from servers.models import Quota, Server, ServerKind

pytestmark = pytest.mark.django_db
MEXICO = zoneinfo.ZoneInfo("America/Mexico_City")


@pytest.fixture
def server(settings, smtp_env):
    settings.SENDING_DAY_TIME_ZONE = "America/Mexico_City"
    smtp_env([2601])
    with time_machine.travel(dt.datetime(2026, 12, 1, 9, 0, tzinfo=MEXICO), tick=False):
        configuration.load_preset("starter")
    return Server.objects.get(kind=ServerKind.SMTP, slot=1)


def test_day_one_cap_is_50(server):
    with time_machine.travel(dt.datetime(2026, 12, 1, 23, 59, tzinfo=MEXICO), tick=False):
        assert server.warmup_day() == 1
        assert server.cap_for() == 50


def test_the_day_turns_at_midnight_in_the_configured_zone_not_utc(server):
    # 05:59 UTC on Dec 2 is still Dec 1 in Mexico City (UTC-6).
    with time_machine.travel(dt.datetime(2026, 12, 2, 5, 59, tzinfo=dt.UTC), tick=False):
        assert sending_day() == dt.date(2026, 12, 1)
        assert server.warmup_day() == 1
    with time_machine.travel(dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC), tick=False):
        assert sending_day() == dt.date(2026, 12, 2)
        assert server.warmup_day() == 2
        assert server.cap_for() == 100


def test_schedule_reaches_the_full_limit_on_day_six_and_stays(server):
    expected = {1: 50, 2: 100, 3: 200, 4: 300, 5: 400, 6: 500, 7: 500, 30: 500}
    for day, cap in expected.items():
        moment = dt.datetime(2026, 12, 1, 12, 0, tzinfo=MEXICO) + dt.timedelta(days=day - 1)
        with time_machine.travel(moment, tick=False):
            assert (server.warmup_day(), server.cap_for()) == (day, cap)
            assert server.in_warmup() is (day < 6)


def test_manual_advance_moves_the_day_and_today_quota(server):
    with time_machine.travel(dt.datetime(2026, 12, 1, 12, 0, tzinfo=MEXICO), tick=False):
        quota.sync_cap(server)
        configuration.advance_warmup_day(server)
        configuration.advance_warmup_day("SMTP Server 1")
        server.refresh_from_db()
        assert server.warmup_day() == 3
        assert Quota.objects.get(server=server, day=dt.date(2026, 12, 1)).cap == 200


def test_a_missed_or_doubled_job_cannot_skew_the_day(server):
    # The day is derived, not counted: asking twice or not at all changes nothing.
    with time_machine.travel(dt.datetime(2026, 12, 4, 12, 0, tzinfo=MEXICO), tick=False):
        assert server.warmup_day() == 4
        assert server.warmup_day() == 4


def test_reloading_a_preset_does_not_restart_warmup(server):
    with time_machine.travel(dt.datetime(2026, 12, 5, 12, 0, tzinfo=MEXICO), tick=False):
        configuration.load_preset("professional")
        server.refresh_from_db()
        assert server.warmup_day() == 5
        new = Server.objects.get(kind=ServerKind.SMTP, slot=2)
        assert new.warmup_day() == 1


def test_ultra_secure_caps_follow_the_ten_day_schedule(settings, smtp_env):
    smtp_env([2601])
    configuration.load_preset("ultra-secure")
    server = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    assert server.cap_for() == 10  # 5% of 200 on day 1
    assert server.min_delay_seconds == 2
