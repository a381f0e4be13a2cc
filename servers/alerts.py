"""Alerts: every pool event becomes an Alert row, and admins hear about it by email.

Mail goes through a connection of its own built from EMAIL_HOST/EMAIL_PORT (the
ALERT_SMTP_* environment), never through the sending pool: when the pool is what is
broken, the alert must still go out.

Three rules keep the inbox readable:
- one mail per server state change: state changes carry a dedupe key naming the change,
  so a repeated signal for the same change adds no row and no mail;
- a rate limit per server (or per kind for alerts about no server): after a mail, further
  alerts within ALERT_MAIL_MIN_INTERVAL_SECONDS wait for the digest, so a flapping server
  cannot flood the inbox;
- the digest (a beat task) mails everything that was not mailed on its own, including the
  kinds that are never mailed alone (health-check failures, suspect servers);
- a down server's failed probes add one feed row per down period, not one per sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
from collections import Counter
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from .models import Alert, Server, ServerState

log = logging.getLogger(__name__)

Level = Alert.Level

# Alert kinds. A kind that is not in MAILED_ALONE only reaches admins through the digest.
SERVER_DOWN = "server_down"
SERVER_UP = "server_up"
SERVER_LISTED = "server_listed"
SERVER_DELISTED = "server_delisted"
SERVER_SUSPECT = "server_suspect"
HEALTH_CHECK_FAILED = "health_check_failed"
DNSBL_CONFIG = "dnsbl_config"
DNSBL_UNKNOWN = "dnsbl_unknown"
DOMAIN_AUTH = "domain_auth"

SUBJECT_PREFIX = "[mailops] "

MAILED_ALONE = frozenset({SERVER_DOWN, SERVER_UP, SERVER_LISTED, SERVER_DELISTED, DNSBL_CONFIG, DOMAIN_AUTH})


def mail_interval() -> dt.timedelta:
    return dt.timedelta(seconds=int(settings.MAILOPS.get("ALERT_MAIL_MIN_INTERVAL_SECONDS", 900)))


def admin_addresses() -> list[str]:
    # ADMINS may hold (name, address) pairs (Django < 6 style) or plain addresses.
    return [entry[1] if isinstance(entry, tuple | list) else str(entry) for entry in settings.ADMINS]


def alert_connection() -> Any:
    """The dedicated alert transport: EMAIL_BACKEND aimed at EMAIL_HOST/EMAIL_PORT, never a pool server."""
    return get_connection(
        settings.EMAIL_BACKEND,
        fail_silently=False,
        host=settings.EMAIL_HOST,
        port=settings.EMAIL_PORT,
        username=settings.EMAIL_HOST_USER,
        password=settings.EMAIL_HOST_PASSWORD,
        use_tls=settings.EMAIL_USE_TLS,
        timeout=getattr(settings, "EMAIL_TIMEOUT", 10),
    )


def raise_alert(
    *,
    kind: str,
    level: str,
    message: str,
    server: Server | None = None,
    dedupe_key: str = "",
    dedupe_window: dt.timedelta | None = None,
    now: dt.datetime | None = None,
) -> Alert | None:
    """Record an alert and mail it when its kind is mailed alone and the rate limit allows.

    With a dedupe_key, an earlier alert with the same key (within dedupe_window, or ever
    when no window is given) means this is the same event again: nothing is added and
    None is returned.
    """
    now = now or timezone.now()
    if dedupe_key:
        earlier = Alert.objects.filter(dedupe_key=dedupe_key)
        if dedupe_window is not None:
            earlier = earlier.filter(created_at__gte=now - dedupe_window)
        if earlier.exists():
            return None
    alert = Alert.objects.create(
        created_at=now, level=level, kind=kind, server=server, message=message, dedupe_key=dedupe_key[:200]
    )
    if kind in MAILED_ALONE:
        mail_alert(alert, now=now)
    return alert


def mail_alert(alert: Alert, *, now: dt.datetime | None = None) -> bool:
    """Mail one alert on its own unless the rate limit holds it for the digest; True if mailed."""
    recipients = admin_addresses()
    if not recipients:
        return False
    now = now or timezone.now()
    if not _claim_mail(alert, now):
        return False
    subject = f"{SUBJECT_PREFIX}{alert.level.upper()}: {_first_line(alert.message)}"
    body = "\n".join(
        [
            alert.message,
            "",
            f"When: {alert.created_at:%Y-%m-%d %H:%M:%S %Z}",
            f"Server: {alert.server.name if alert.server_id else '-'}",
            f"Kind: {alert.kind}",
            "",
            f"Dashboard: {settings.MAILOPS.get('PUBLIC_BASE_URL', '')}",
        ]
    )
    if _send(subject, body, recipients):
        return True
    # Give the claim back so the digest retries this alert.
    Alert.objects.filter(pk=alert.pk).update(emailed_at=None)
    alert.emailed_at = None
    return False


def _claim_mail(alert: Alert, now: dt.datetime) -> bool:
    """Take this alert's mail slot: a conditional UPDATE, under a lock on the server row,
    so two workers reporting on the same server cannot both mail inside the interval."""
    with transaction.atomic():
        recent = Alert.objects.filter(emailed_at__gte=now - mail_interval())
        if alert.server_id:
            list(Server.objects.select_for_update().filter(pk=alert.server_id).values_list("pk"))
            recent = recent.filter(server_id=alert.server_id)
        else:
            recent = recent.filter(server=None, kind=alert.kind)
        if recent.exclude(pk=alert.pk).exists():
            return False
        claimed = Alert.objects.filter(pk=alert.pk, emailed_at=None, digested_at=None).update(emailed_at=now)
    if claimed:
        alert.emailed_at = now
    return bool(claimed)


def send_digest(*, now: dt.datetime | None = None) -> int:
    """Mail every alert that has not reached admins yet, in one message; returns how many."""
    recipients = admin_addresses()
    if not recipients:
        return 0
    now = now or timezone.now()
    pending = list(
        Alert.objects.filter(emailed_at=None, digested_at=None, created_at__lte=now).values_list("pk", flat=True)
    )
    if not pending:
        return 0
    Alert.objects.filter(pk__in=pending, emailed_at=None, digested_at=None).update(digested_at=now)
    alerts = list(Alert.objects.filter(pk__in=pending, digested_at=now).select_related("server").order_by("created_at"))
    if not alerts:
        return 0
    subject = f"{SUBJECT_PREFIX}digest: {len(alerts)} alert{'s' if len(alerts) != 1 else ''}"
    if _send(subject, digest_body(alerts), recipients):
        return len(alerts)
    Alert.objects.filter(pk__in=[a.pk for a in alerts], digested_at=now).update(digested_at=None)
    return 0


def digest_body(alerts: Iterable[Alert]) -> str:
    alerts = list(alerts)
    counts = Counter((a.server.name if a.server_id else "-", a.kind) for a in alerts)
    lines = ["Alerts not mailed on their own (rate limit, or kinds that only go in the digest):", ""]
    lines += [f"  {count:>4} × {kind} on {server}" for (server, kind), count in sorted(counts.items())]
    lines += ["", "In order:"]
    lines += [
        f"  {a.created_at:%Y-%m-%d %H:%M:%S} [{a.level}] {_first_line(a.message)}" for a in alerts
    ]
    lines += ["", f"Dashboard: {settings.MAILOPS.get('PUBLIC_BASE_URL', '')}"]
    return "\n".join(lines)


def acknowledge(alert: Alert, user: Any) -> bool:
    """Record who acknowledged the alert and when; the first acknowledgement wins."""
    now = timezone.now()
    user_id = getattr(user, "pk", None)
    done = Alert.objects.filter(pk=alert.pk, acknowledged_at=None).update(
        acknowledged_at=now, acknowledged_by_id=user_id
    )
    if done:
        alert.acknowledged_at, alert.acknowledged_by_id = now, user_id
    return bool(done)


def _send(subject: str, body: str, recipients: list[str]) -> bool:
    message = EmailMessage(
        subject=" ".join(subject.split())[:200],
        body=body,
        from_email=settings.SERVER_EMAIL,
        to=recipients,
        connection=alert_connection(),
    )
    try:
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        log.warning(
            "alert mail to %s via %s:%s failed: %s", recipients, settings.EMAIL_HOST, settings.EMAIL_PORT, exc
        )
        return False
    return True


def _first_line(text: str, limit: int = 150) -> str:
    line = (text.strip().splitlines() or [""])[0]
    if len(line) <= limit:
        return line
    return line[: limit - 1].rsplit(" ", 1)[0] + "…"


# -- signal receivers (connected in ServersConfig.ready) ----------------------------------


def _state_key(kind: str, server: Server) -> str:
    # The transition timestamp names one state change, so a repeated signal dedupes.
    return f"{kind}:{server.pk}:{server.state_changed_at.isoformat()}"


def _until(server: Server) -> str:
    # A suspicion lasts two minutes, a SendGrid rate limit until its reset: say which.
    if server.suspect_until is None:
        return "the next check"
    return f"{server.suspect_until.astimezone(dt.UTC):%H:%M:%S} UTC"


def on_server_down(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    raise_alert(
        kind=SERVER_DOWN,
        level=Level.CRITICAL,
        server=server,
        message=f"{server.name} is down and out of rotation: {error or 'no reason given'}",
        dedupe_key=_state_key(SERVER_DOWN, server),
    )


def on_server_up(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    raise_alert(
        kind=SERVER_UP,
        level=Level.INFO,
        server=server,
        message=f"{server.name} is up again and back in rotation.",
        dedupe_key=_state_key(SERVER_UP, server),
    )


def on_server_listed(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    raise_alert(
        kind=SERVER_LISTED,
        level=Level.CRITICAL,
        server=server,
        message=(
            f"{server.name} ({server.ip_address}) is on a DNS blocklist and is paused, so it sends nothing "
            f"until the listing clears: {error}"
        ),
        dedupe_key=_state_key(SERVER_LISTED, server),
    )


def on_server_delisted(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    raise_alert(
        kind=SERVER_DELISTED,
        level=Level.INFO,
        server=server,
        message=f"{server.name} ({server.ip_address}) is clear on every blocklist again and has resumed.",
        dedupe_key=_state_key(SERVER_DELISTED, server),
    )


def on_server_suspect(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    raise_alert(
        kind=SERVER_SUSPECT,
        level=Level.WARNING,
        server=server,
        message=f"{server.name} failed at send time and sits out until {_until(server)}; health checks decide the rest: {error}",
    )


def on_health_check_failed(sender: Any, *, server: Server, error: str = "", **kwargs: Any) -> None:
    stage = kwargs.get("stage", "")
    # Once a server is down its failed probes are expected: the feed gets one of them per
    # down period (every probe is still kept as a HealthCheck row).
    dedupe_key = _state_key(HEALTH_CHECK_FAILED, server) if server.state == ServerState.DOWN else ""
    raise_alert(
        kind=HEALTH_CHECK_FAILED,
        level=Level.WARNING,
        server=server,
        message=f"Health check of {server.name} failed{f' at {stage}' if stage else ''}: {error}",
        dedupe_key=dedupe_key,
    )


def connect_receivers() -> None:
    from . import signals

    pairs = [
        (signals.server_down, on_server_down),
        (signals.server_up, on_server_up),
        (signals.server_listed, on_server_listed),
        (signals.server_delisted, on_server_delisted),
        (signals.server_suspect, on_server_suspect),
        (signals.health_check_failed, on_health_check_failed),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver, dispatch_uid=f"servers.alerts.{receiver.__name__}")
