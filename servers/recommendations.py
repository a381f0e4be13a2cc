"""get_recommendations(): the seed's getRecommendations(), as [{level, message}].

Messages are translated with Django's i18n (English source, Spanish in
locale/es/LC_MESSAGES/django.po, worded as in the seed), in the language active when
called: the API and the dashboard activate the user's language per request.

Each rule reads aggregates only (ServerDailyStat over the reputation window, Quota,
server states, the latest blocklist and sender-domain checks) and either fires or stays
quiet. Levels: critical, warning, info; the list is ordered most severe first.

| rule | fires when | level |
|---|---|---|
| low reputation | the configured pool servers' mean reputation < 80 | warning |
| warm-up | any configured pool server is still warming up (with the date all reach full capacity) | info |
| utilisation | the busiest of the last 7 days used ≥ 80% of the configuration's daily capacity | warning |
| server down | a pool server is down | critical |
| listed | a pool server is paused because its IP is listed (with the zones) | critical |
| hard bounces | pool hard-bounce rate over 7 days > 2% (at least 20 judged messages) | warning |
| complaints | complaint rate over 7 days ≥ 0.1% (warning) or ≥ 0.3% (critical) | warning/critical |
| sender auth | the sender domain lacks SPF, DKIM or DMARC (latest check) | warning |
| SendGrid overflow | SendGrid sent mail on more than half of the last 7 days | warning |
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db.models import Max, Sum
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from . import reputation
from .blocklist import latest_domain_auth
from .configuration import active_configuration
from .daytime import sending_day
from .models import BlocklistCheck, Configuration, Preset, Quota, Server, ServerDailyStat, ServerKind, ServerState

LOW_REPUTATION = 80.0
UTILISATION_LINE = 0.80
HARD_BOUNCE_LINE = 0.02
COMPLAINT_WARNING = 0.001  # Gmail's bulk-sender guideline
COMPLAINT_CRITICAL = 0.003  # where Gmail enforces
SEVERITY = {"critical": 0, "warning": 1, "info": 2}

Recommendation = dict[str, str]


def get_recommendations(*, day: dt.date | None = None) -> list[Recommendation]:
    day = day or sending_day()
    servers = list(
        Server.objects.filter(in_pool=True).select_related("warmup_schedule").order_by("priority", "kind", "slot")
    )
    config = active_configuration()
    found: list[Recommendation] = []
    for rule in (
        servers_down,
        servers_listed,
        complaints,
        hard_bounces,
        low_reputation,
        utilisation,
        sendgrid_overflow,
        sender_authentication,
        warming_up,
    ):
        found.extend(rule(servers=servers, config=config, day=day))
    return sorted(found, key=lambda r: SEVERITY[r["level"]])


def _rec(level: str, message: str) -> Recommendation:
    return {"level": level, "message": message}


def _percent(rate: float, decimals: int) -> str:
    return number_format(rate * 100, decimals)


def pool_window(servers: list[Server], day: dt.date) -> reputation.Window:
    windows = reputation.windows([s.pk for s in servers], day=day)
    total: dict[str, int] = {}
    for window in windows.values():
        for name, value in window.__dict__.items():
            total[name] = total.get(name, 0) + value
    return reputation.Window(**total)


# -- rules ----------------------------------------------------------------------------------


def low_reputation(*, servers: list[Server], **context: Any) -> list[Recommendation]:
    scores = [s.reputation for s in servers if s.is_configured]
    if not scores or sum(scores) / len(scores) >= LOW_REPUTATION:
        return []
    return [_rec("warning", _("Average reputation is below %(threshold)s%%. Slow down.") % {"threshold": 80})]


def warming_up(*, servers: list[Server], day: dt.date, **context: Any) -> list[Recommendation]:
    warming = [s for s in servers if s.is_configured and s.in_warmup(day)]
    if not warming:
        return []
    count = len(warming)
    full_on = max(d for d in (s.full_capacity_on(day) for s in warming) if d is not None)
    first = ngettext(
        "%(count)d server is warming up. Full capacity soon.",
        "%(count)d servers are warming up. Full capacity soon.",
        count,
    ) % {"count": count}
    second = ngettext(
        "It reaches full capacity on %(date)s.",
        "All reach full capacity on %(date)s.",
        count,
    ) % {"date": date_format(full_on, "DATE_FORMAT")}
    return [_rec("info", f"{first} {second}")]


def next_preset(config: Configuration | None) -> Preset | None:
    """The first preset after the current one (Preset ordering) with more daily capacity;
    failing that, the smallest preset anywhere with more capacity."""
    if config is None:
        return None
    capacity = config.emails_per_day
    presets = list(Preset.objects.all())  # Meta.ordering: position, key
    start = next((i + 1 for i, p in enumerate(presets) if p.pk == config.preset_id), 0)
    bigger_after = [p for p in presets[start:] if p.emails_per_day > capacity]
    if bigger_after:
        return bigger_after[0]
    bigger = [p for p in presets if p.emails_per_day > capacity]
    return min(bigger, key=lambda p: (p.emails_per_day, p.position, p.key)) if bigger else None


def _preset_label(preset: Preset) -> str:
    return f"{preset.name} ({preset.key})"


def utilisation(
    *, servers: list[Server], config: Configuration | None, day: dt.date, **context: Any
) -> list[Recommendation]:
    if config is None or config.emails_per_day <= 0:
        return []
    first = day - dt.timedelta(days=reputation.WINDOW_DAYS - 1)
    per_day = (
        Quota.objects.filter(server_id__in=[s.pk for s in servers], day__gte=first, day__lte=day)
        .values("day")
        .annotate(total_used=Sum("used"))
    )
    peak = max((row["total_used"] for row in per_day), default=0)
    share = peak / config.emails_per_day
    if share < UTILISATION_LINE:
        return []
    values = {
        "percent": number_format(share * 100, 0),
        "used": number_format(peak, 0, force_grouping=True),
        "capacity": number_format(config.emails_per_day, 0, force_grouping=True),
    }
    upgrade = next_preset(config)
    if upgrade is None:
        message = _(
            "Utilisation reached %(percent)s%% of capacity (%(used)s of %(capacity)s emails a day). "
            "This is the largest preset: add servers with a custom configuration."
        ) % values
    else:
        message = _(
            "Utilisation reached %(percent)s%% of capacity (%(used)s of %(capacity)s emails a day). "
            "Upgrade to %(preset)s: %(emails)s emails a day."
        ) % {**values, "preset": _preset_label(upgrade),
             "emails": number_format(upgrade.emails_per_day, 0, force_grouping=True)}
    return [_rec("warning", message)]


def servers_down(*, servers: list[Server], **context: Any) -> list[Recommendation]:
    return [
        _rec("critical", _("%(server)s is down: %(reason)s") % {"server": s.name, "reason": s.state_reason or "-"})
        for s in servers
        if s.state == ServerState.DOWN
    ]


def listed_zones(server: Server) -> list[str]:
    latest = BlocklistCheck.objects.filter(server=server).aggregate(at=Max("checked_at"))["at"]
    if latest is None:
        return []
    return sorted(
        set(
            BlocklistCheck.objects.filter(server=server, checked_at=latest, status="listed").values_list(
                "zone", flat=True
            )
        )
    )


def servers_listed(*, servers: list[Server], **context: Any) -> list[Recommendation]:
    found = []
    for s in servers:
        if s.state != ServerState.PAUSED_BLOCKLISTED:
            continue
        zones = ", ".join(listed_zones(s)) or "-"
        found.append(
            _rec(
                "critical",
                _(
                    "%(server)s (%(ip)s) is listed on %(zones)s and paused. Ask the list to delist it; "
                    "it resumes on its own once clear."
                ) % {"server": s.name, "ip": s.ip_address or "-", "zones": zones},
            )
        )
    return found


def hard_bounces(*, servers: list[Server], day: dt.date, **context: Any) -> list[Recommendation]:
    window = pool_window(servers, day)
    if window.judged < reputation.MIN_SAMPLE:
        return []
    rate = window.bounced / window.judged
    if rate <= HARD_BOUNCE_LINE:
        return []
    return [
        _rec(
            "warning",
            _(
                "The hard-bounce rate is %(rate)s%% over the last 7 days, above 2%%. "
                "Clean your lists before sending more."
            ) % {"rate": _percent(rate, 1)},
        )
    ]


def complaints(*, servers: list[Server], day: dt.date, **context: Any) -> list[Recommendation]:
    window = pool_window(servers, day)
    if window.judged < reputation.MIN_SAMPLE or window.delivered <= 0:
        return []
    rate = window.complained / window.delivered
    values = {"rate": _percent(rate, 2)}
    if rate >= COMPLAINT_CRITICAL:
        return [
            _rec(
                "critical",
                _(
                    "The complaint rate is %(rate)s%% over the last 7 days, at or above 0.3%%: mailbox providers "
                    "block mail like this. Stop and review consent for your lists."
                ) % values,
            )
        ]
    if rate >= COMPLAINT_WARNING:
        return [
            _rec(
                "warning",
                _(
                    "The complaint rate is %(rate)s%% over the last 7 days, at or above 0.1%%. "
                    "Send only to people who asked for your mail."
                ) % values,
            )
        ]
    return []


def sender_authentication(**context: Any) -> list[Recommendation]:
    domain = settings.MAILOPS.get("SENDER_DOMAIN", "").strip()
    if not domain:
        return [
            _rec(
                "info",
                _(
                    "No sender domain is configured, so SPF, DKIM and DMARC cannot be checked. "
                    "Set MAILOPS_SENDER_DOMAIN."
                ),
            )
        ]
    check = latest_domain_auth()
    if check is None:
        return []
    found = []
    for record, value in (("SPF", check.spf), ("DKIM", check.dkim), ("DMARC", check.dmarc)):
        if value and record == "DKIM" and any("revoked (empty p=)" in p for p in check.problems):
            # Published but revoked: every signature made with the key fails, as if unsigned.
            message = _(
                "The DKIM key of %(domain)s is revoked (empty p=), so every signature fails. "
                "Publish the current public key."
            ) % {"domain": check.domain}
            found.append(_rec("warning", message))
            continue
        if value:
            continue
        if any(p.startswith(f"Could not look up {record}") or p.startswith(f"Could not look up the {record}")
               for p in check.problems):
            continue  # a failed lookup says nothing about the record
        if record == "DKIM" and not check.dkim_selector:
            message = _("No DKIM selector is configured, so DKIM cannot be checked. Set DKIM_SELECTOR.")
        else:
            message = _(
                "%(domain)s has no %(record)s record. Publish one: receivers junk or refuse unauthenticated bulk mail."
            ) % {"domain": check.domain, "record": record}
        found.append(_rec("warning", message))
    return found


def sendgrid_overflow(
    *, servers: list[Server], config: Configuration | None, day: dt.date, **context: Any
) -> list[Recommendation]:
    sendgrid = [s.pk for s in servers if s.kind == ServerKind.SENDGRID]
    if not sendgrid:
        return []
    first = day - dt.timedelta(days=reputation.WINDOW_DAYS - 1)
    used_days = (
        ServerDailyStat.objects.filter(server_id__in=sendgrid, day__gte=first, day__lte=day, sent__gt=0)
        .values("day")
        .distinct()
        .count()
    )
    if used_days * 2 <= reputation.WINDOW_DAYS:
        return []
    upgrade = next_preset(config)
    values = {"days": used_days, "window": reputation.WINDOW_DAYS}
    if upgrade is None:
        message = _(
            "SendGrid overflow was used on %(days)s of the last %(window)s days: your own servers are too few "
            "for your volume. Add servers."
        ) % values
    else:
        message = _(
            "SendGrid overflow was used on %(days)s of the last %(window)s days: your own servers are too few "
            "for your volume. Consider %(preset)s."
        ) % {**values, "preset": _preset_label(upgrade)}
    return [_rec("warning", message)]
