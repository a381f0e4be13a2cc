"""Server reputation: a 0–100 score over the last 7 sending days, from daily aggregates only.

The formula is documented, with worked examples, in docs/REPUTATION.md. In short, the
score starts at 100 and loses points for each warning sign, each penalty capped:

    hard bounces      bounced / judged × 1000          at most 30
    complaints        complained / delivered × 10000   at most 30
    deferrals         deferred / (judged + deferred) × 50   at most 15
    delivery          (failed + unknown) / judged × 100     at most 20
    listings          15 per day listed                     at most 45
    health            health_failures / health_checks × 20  at most 10

where judged = sent + bounced - returned + failed + unknown (every message that reached a
final verdict at this server) and delivered = sent - returned. Rate penalties need at
least MIN_SAMPLE judged messages in the window (the deferral penalty: MIN_SAMPLE
attempts), so a handful of early sends cannot sink a new server; listings and health
count from the first day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce

from .daytime import sending_day
from .models import Server, ServerDailyStat

WINDOW_DAYS = 7
MIN_SAMPLE = 20

BOUNCE_WEIGHT, BOUNCE_CAP = 1000.0, 30.0
COMPLAINT_WEIGHT, COMPLAINT_CAP = 10000.0, 30.0
DEFERRAL_WEIGHT, DEFERRAL_CAP = 50.0, 15.0
DELIVERY_WEIGHT, DELIVERY_CAP = 100.0, 20.0
LISTED_DAY_PENALTY, LISTED_CAP = 15.0, 45.0
HEALTH_WEIGHT, HEALTH_CAP = 20.0, 10.0

SUMMED = (
    "sent", "returned", "bounced", "complained", "deferred", "failed", "unknown", "health_checks", "health_failures"
)


@dataclass(frozen=True)
class Window:
    """Sums of a server's daily aggregates over the window."""

    sent: int = 0
    returned: int = 0
    bounced: int = 0
    complained: int = 0
    deferred: int = 0
    failed: int = 0
    unknown: int = 0
    health_checks: int = 0
    health_failures: int = 0
    listed_days: int = 0

    @property
    def delivered(self) -> int:
        return max(0, self.sent - self.returned)

    @property
    def judged(self) -> int:
        # Async bounces (returned) are already in `sent`; count each message once.
        return self.sent + max(0, self.bounced - self.returned) + self.failed + self.unknown


@dataclass(frozen=True)
class Reputation:
    score: float
    penalties: dict[str, float]
    window: Window


def _rate(part: int, whole: int) -> float:
    return part / whole if whole > 0 else 0.0


def score(window: Window) -> Reputation:
    """The pure formula; see docs/REPUTATION.md."""
    penalties: dict[str, float] = {}
    judged = window.judged
    if judged >= MIN_SAMPLE:
        penalties["bounces"] = min(BOUNCE_CAP, _rate(window.bounced, judged) * BOUNCE_WEIGHT)
        penalties["complaints"] = min(COMPLAINT_CAP, _rate(window.complained, window.delivered) * COMPLAINT_WEIGHT)
    # A server whose every attempt is deferred has judged nothing yet, and that is the
    # very case the deferral rate must catch, so it is gated on attempts instead.
    if judged + window.deferred >= MIN_SAMPLE:
        penalties["deferrals"] = min(DEFERRAL_CAP, _rate(window.deferred, judged + window.deferred) * DEFERRAL_WEIGHT)
    if judged >= MIN_SAMPLE:
        penalties["delivery"] = min(DELIVERY_CAP, _rate(window.failed + window.unknown, judged) * DELIVERY_WEIGHT)
    penalties["listings"] = min(LISTED_CAP, window.listed_days * LISTED_DAY_PENALTY)
    penalties["health"] = min(HEALTH_CAP, _rate(window.health_failures, window.health_checks) * HEALTH_WEIGHT)
    penalties = {name: round(value, 2) for name, value in penalties.items()}
    total = 100.0 - sum(penalties.values())
    return Reputation(score=round(max(0.0, min(100.0, total)), 1), penalties=penalties, window=window)


def window_bounds(day: dt.date | None = None) -> tuple[dt.date, dt.date]:
    day = day or sending_day()
    return day - dt.timedelta(days=WINDOW_DAYS - 1), day


def windows(server_ids: list[int] | None = None, *, day: dt.date | None = None) -> dict[int, Window]:
    """Each server's window in one aggregate query."""
    first, last = window_bounds(day)
    rows = ServerDailyStat.objects.filter(day__gte=first, day__lte=last)
    if server_ids is not None:
        rows = rows.filter(server_id__in=server_ids)
    # Annotations may not reuse a field's name, hence the prefix.
    aggregates = {f"total_{name}": Coalesce(Sum(name), 0) for name in SUMMED}
    aggregates["total_listed_days"] = Count("pk", filter=Q(listed=True))
    return {
        row["server_id"]: Window(**{name: row[f"total_{name}"] for name in (*SUMMED, "listed_days")})
        for row in rows.values("server_id").annotate(**aggregates)
    }


def server_reputation(server: Server, *, day: dt.date | None = None) -> Reputation:
    return score(windows([server.pk], day=day).get(server.pk, Window()))


def recompute(*, day: dt.date | None = None) -> dict[int, float]:
    """Score every server and store it on Server.reputation and on today's daily stat row."""
    day = day or sending_day()
    found = windows(day=day)
    scores: dict[int, float] = {}
    for server_id, in_pool in Server.objects.values_list("pk", "in_pool"):
        value = score(found.get(server_id, Window())).score
        scores[server_id] = value
        Server.objects.filter(pk=server_id).update(reputation=value)
        updated = ServerDailyStat.objects.filter(server_id=server_id, day=day).update(reputation=value)
        # A day row is only created for servers that are in the pool or have history.
        if not updated and (in_pool or server_id in found):
            ServerDailyStat.objects.get_or_create(server_id=server_id, day=day, defaults={"reputation": value})
            ServerDailyStat.objects.filter(server_id=server_id, day=day).update(reputation=value)
    return scores
