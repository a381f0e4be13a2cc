"""/metrics: the pool's state in the Prometheus text format (version 0.0.4), written by hand.

Protected by a bearer token (settings.METRICS_TOKEN) for scrapers, or a signed-in session
for a person looking. Every number comes from aggregates or indexed queries: per-server
daily stats, today's quota rows, campaign counters, and the two partial indexes on
Message (due queue and leased messages), so a scrape costs the same at any volume.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from campaigns.models import Campaign, Message, MessageStatus
from servers.daytime import sending_day
from servers.models import Alert, Quota, Server, ServerDailyStat, ServerState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SERVER_COUNTERS = ("sent", "delivered", "deferred", "bounced", "complained", "failed", "unknown", "policy_blocks")
CAMPAIGN_COUNTERS = ("sent", "deferred", "bounced", "failed", "suppressed", "unknown")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, object], float | int | None]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def collect() -> str:
    out = Exposition()
    servers = list(Server.objects.select_related("warmup_schedule").order_by("priority", "kind", "slot"))
    label = {s.pk: {"server": s.name, "kind": s.kind} for s in servers}

    totals = {
        row["server_id"]: row
        for row in ServerDailyStat.objects.values("server_id").annotate(
            **{f"n_{c}": Coalesce(Sum(c), 0) for c in SERVER_COUNTERS}
        )
    }
    out.family(
        "mailops_server_messages_total",
        "counter",
        "Messages per server by outcome, from the per-server daily aggregates.",
        (
            ({**label[s.pk], "outcome": c}, totals.get(s.pk, {}).get(f"n_{c}", 0))
            for s in servers
            for c in SERVER_COUNTERS
        ),
    )

    today = {q.server_id: q for q in Quota.objects.filter(day=sending_day())}
    out.family(
        "mailops_quota_used",
        "gauge",
        "Sends reserved today against the server's cap.",
        ((label[s.pk], today[s.pk].used if s.pk in today else 0) for s in servers),
    )
    out.family(
        "mailops_quota_cap",
        "gauge",
        "Today's cap: the warm-up step or the daily limit.",
        ((label[s.pk], today[s.pk].cap if s.pk in today else s.cap_for()) for s in servers),
    )
    out.family(
        "mailops_server_up",
        "gauge",
        "1 when the server is in the pool and active.",
        ((label[s.pk], s.in_pool and s.state == ServerState.ACTIVE) for s in servers),
    )
    out.family(
        "mailops_server_state",
        "gauge",
        "1 for the server's current state.",
        (({**label[s.pk], "state": state}, s.state == state) for s in servers for state in ServerState.values),
    )
    out.family(
        "mailops_server_in_pool", "gauge", "1 when the server is part of the active configuration.",
        ((label[s.pk], s.in_pool) for s in servers),
    )
    out.family(
        "mailops_server_reputation", "gauge", "Reputation 0-100 over the last 7 days.",
        ((label[s.pk], float(s.reputation)) for s in servers),
    )
    out.family(
        "mailops_server_consecutive_health_failures", "gauge", "Failed health checks in a row.",
        ((label[s.pk], s.consecutive_health_failures) for s in servers),
    )

    now = timezone.now()
    # Both filters match the partial index message_due (status IN queued/deferred, next_attempt_at).
    queue = Message.objects.filter(status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]).aggregate(
        queued_due=Count("pk", filter=Q(status=MessageStatus.QUEUED, next_attempt_at__lte=now)),
        queued_later=Count("pk", filter=Q(status=MessageStatus.QUEUED, next_attempt_at__gt=now)),
        deferred_due=Count("pk", filter=Q(status=MessageStatus.DEFERRED, next_attempt_at__lte=now)),
        deferred_later=Count("pk", filter=Q(status=MessageStatus.DEFERRED, next_attempt_at__gt=now)),
    )
    sending = Message.objects.filter(status=MessageStatus.SENDING).count()  # partial index message_leased
    out.family(
        "mailops_queue_depth",
        "gauge",
        "Messages waiting to be sent: due now, or waiting for their retry or schedule.",
        [
            ({"status": "queued", "due": "now"}, queue["queued_due"]),
            ({"status": "queued", "due": "later"}, queue["queued_later"]),
            ({"status": "deferred", "due": "now"}, queue["deferred_due"]),
            ({"status": "deferred", "due": "later"}, queue["deferred_later"]),
        ],
    )
    out.family("mailops_messages_in_flight", "gauge", "Messages claimed by a sender right now.", [({}, sending)])

    campaigns = Campaign.objects.aggregate(
        **{f"n_{c}": Coalesce(Sum(c), 0) for c in CAMPAIGN_COUNTERS}, n_total=Coalesce(Sum("total"), 0)
    )
    out.family(
        "mailops_campaign_messages_total",
        "counter",
        "Campaign messages by status, summed over every campaign's counters.",
        [({"status": c}, campaigns[f"n_{c}"]) for c in (*CAMPAIGN_COUNTERS, "total")],
    )
    by_status = dict(Campaign.objects.values_list("status").annotate(n=Count("pk")).order_by())
    out.family(
        "mailops_campaigns",
        "gauge",
        "Campaigns by status.",
        [({"status": s}, by_status.get(s, 0)) for s in Campaign.Status.values],
    )
    alerts = dict(
        Alert.objects.filter(acknowledged_at__isnull=True).values_list("level").annotate(n=Count("pk")).order_by()
    )
    out.family(
        "mailops_alerts_unacknowledged",
        "gauge",
        "Alerts nobody has acknowledged yet.",
        [({"level": level}, alerts.get(level, 0)) for level in Alert.Level.values],
    )
    return out.text()


def _bearer_ok(request: HttpRequest) -> bool:
    expected = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


@login_not_required  # it checks the bearer token itself, and a scraper cannot follow a login redirect
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not (_bearer_ok(request) or request.user.is_authenticated):
        response = HttpResponse("metrics need Authorization: Bearer <METRICS_TOKEN> or a signed-in session\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="mailops metrics"'
        return response
    response = HttpResponse(collect(), content_type=CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
