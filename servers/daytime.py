"""The sending day: caps and warm-up days begin and end at midnight in SENDING_DAY_TIME_ZONE."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.utils import timezone


def day_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.SENDING_DAY_TIME_ZONE)


def sending_day(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(day_zone()).date()


def day_start(day: dt.date) -> dt.datetime:
    """The UTC instant at which `day` begins in the sending zone."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=day_zone()).astimezone(dt.UTC)


def next_day_start(now: dt.datetime | None = None) -> dt.datetime:
    return day_start(sending_day(now) + dt.timedelta(days=1))
