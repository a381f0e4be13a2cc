"""The DNS blocklist sweep: look up every pool server's egress IP on each configured zone,
pause what is listed, resume what is clear again, and check the sender domain's auth records.

What each answer does (servers/dnsbl.py decides the status):
- listed (127.0.0.x): the server is paused-blocklisted with the zones and TXT reasons, and
  the day is marked listed in its daily stats (reputation counts listed days);
- clear on every zone: a paused-blocklisted server resumes on its own;
- error (127.255.255.x and other non-listing codes): never a listing and never a pause; a
  configuration alert explains the refusal (usually a public resolver) and how to fix it;
- unknown (timeout, SERVFAIL): recorded, no state change; a paused server stays paused
  until every zone answers clear.

Each server is checked when its last check is older than the active configuration's
blocklist_interval_seconds, so the beat task may run often and restarts lose nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import dns.resolver
from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from . import alerts, dnsbl, state, stats
from .configuration import active_configuration
from .models import Alert, BlocklistCheck, DomainAuthCheck, Server, ServerState

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 3600
MAX_THREADS = 16
# A refusal or a resolver problem is repeated on every sweep; one alert a day is enough.
CONFIG_ALERT_WINDOW = dt.timedelta(hours=24)
DOMAIN_ALERT_WINDOW = dt.timedelta(days=7)


@dataclass
class ServerSweep:
    server: Server
    ip: str
    results: list[dnsbl.ZoneResult] = field(default_factory=list)
    action: str = ""  # "paused", "resumed" or ""

    @property
    def listed(self) -> list[dnsbl.ZoneResult]:
        return [r for r in self.results if r.listed]


def interval() -> dt.timedelta:
    config = active_configuration()
    seconds = config.blocklist_interval_seconds if config else DEFAULT_INTERVAL_SECONDS
    return dt.timedelta(seconds=seconds)


def checkable_servers() -> list[Server]:
    """In-pool servers with an egress IP of their own. SendGrid's shared cloud IPs are
    SendGrid's to watch, so a SendGrid server is checked only when it has a dedicated IP."""
    return list(
        Server.objects.filter(in_pool=True)
        .exclude(state=ServerState.UNCONFIGURED)
        .exclude(ip_address=None)
        .order_by("priority", "kind", "slot")
    )


def due_servers(*, now: dt.datetime | None = None) -> list[Server]:
    now = now or timezone.now()
    cutoff = now - interval()
    ids = [s.pk for s in checkable_servers()]
    due = (
        Server.objects.filter(pk__in=ids)
        .annotate(last_check=Max("blocklist_checks__checked_at"))
        .filter(Q(last_check=None) | Q(last_check__lte=cutoff))
        .order_by("priority", "kind", "slot")
    )
    return list(due)


def sweep(
    *,
    force: bool = False,
    now: dt.datetime | None = None,
    resolver: dns.resolver.Resolver | None = None,
    zones: list[str] | None = None,
    servers: list[Server] | None = None,
) -> list[ServerSweep]:
    """Check the servers that are due (every checkable server with force) and act on the answers."""
    now = now or timezone.now()
    resolver = resolver or dnsbl.resolver_from_settings()
    zones = zones if zones is not None else dnsbl.zones_from_settings()
    if servers is None:
        servers = checkable_servers() if force else due_servers(now=now)
    if not servers or not zones:
        return []

    # Lookups run in threads: 25 servers × 3 zones at a few seconds' timeout each would
    # otherwise take minutes. The database is only touched from this thread.
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(servers))) as pool:
        looked_up = list(pool.map(lambda s: dnsbl.check_ip(s.ip_address, zones, resolver=resolver), servers))

    sweeps = []
    for server, results in zip(servers, looked_up, strict=True):
        sweeps.append(_act(server, results, now=now))
    return sweeps


def _act(server: Server, results: list[dnsbl.ZoneResult], *, now: dt.datetime) -> ServerSweep:
    ip = server.ip_address or ""
    BlocklistCheck.objects.bulk_create(
        BlocklistCheck(
            server=server,
            checked_at=now,
            ip_address=ip,
            zone=r.zone,
            status=r.status,
            codes=list(r.codes),
            reason=r.reason or r.error,
        )
        for r in results
    )
    outcome = ServerSweep(server=server, ip=ip, results=results)
    listed = outcome.listed
    if listed:
        stats.mark_listed(server.pk, True)
        if state.pause_blocklisted(server, reason=listing_reason(ip, listed)):
            outcome.action = "paused"
    elif results and all(r.status == "clear" for r in results):
        if server.state == ServerState.PAUSED_BLOCKLISTED and state.resume_delisted(server):
            outcome.action = "resumed"

    for r in results:
        if r.status == "error":
            alerts.raise_alert(
                kind=alerts.DNSBL_CONFIG,
                level=Alert.Level.WARNING,
                message=f"Blocklist query error for {ip} on {r.zone}, not a listing (no server was paused). {r.error}",
                dedupe_key=f"{alerts.DNSBL_CONFIG}:{r.zone}:{','.join(r.codes)}",
                dedupe_window=CONFIG_ALERT_WINDOW,
                now=now,
            )
        elif r.status == "unknown":
            alerts.raise_alert(
                kind=alerts.DNSBL_UNKNOWN,
                level=Alert.Level.INFO,
                message=f"Blocklist lookup for {ip} on {r.zone} gave no answer; the result is unknown. {r.error}",
                dedupe_key=f"{alerts.DNSBL_UNKNOWN}:{r.zone}",
                dedupe_window=CONFIG_ALERT_WINDOW,
                now=now,
            )
    return outcome


def listing_reason(ip: str, listed: list[dnsbl.ZoneResult]) -> str:
    parts = []
    for r in listed:
        detail = f"{r.zone} ({', '.join(r.codes)})"
        parts.append(f"{detail}: {r.reason}" if r.reason else detail)
    return f"{ip} listed on " + "; ".join(parts)


# -- sender domain -------------------------------------------------------------------------


def sender_domain() -> tuple[str, str]:
    config = settings.MAILOPS
    return config.get("SENDER_DOMAIN", "").strip(), config.get("DKIM_SELECTOR", "").strip()


def latest_domain_auth() -> DomainAuthCheck | None:
    domain, _ = sender_domain()
    if not domain:
        return None
    return DomainAuthCheck.objects.filter(domain=domain.lower().rstrip(".")).order_by("-checked_at").first()


def check_domain(
    *, force: bool = False, now: dt.datetime | None = None, resolver: dns.resolver.Resolver | None = None
) -> DomainAuthCheck | None:
    """Look up SPF, DKIM and DMARC for MAILOPS SENDER_DOMAIN (when due) and keep the result."""
    domain, selector = sender_domain()
    if not domain:
        return None
    now = now or timezone.now()
    latest = latest_domain_auth()
    if not force and latest is not None and latest.checked_at > now - interval():
        return latest
    resolver = resolver or dnsbl.resolver_from_settings()
    auth = dnsbl.check_sender_domain(domain, dkim_selector=selector, resolver=resolver)
    check = DomainAuthCheck.objects.create(
        checked_at=now,
        domain=domain.lower().rstrip("."),
        dkim_selector=selector,
        spf=auth.spf,
        dkim=auth.dkim,
        dmarc=auth.dmarc,
        problems=list(auth.problems),
    )
    if auth.problems:
        digest = hashlib.sha256("\n".join(auth.problems).encode()).hexdigest()[:16]
        alerts.raise_alert(
            kind=alerts.DOMAIN_AUTH,
            level=Alert.Level.WARNING,
            message=f"Sender domain {check.domain} needs attention:\n" + "\n".join(f"- {p}" for p in auth.problems),
            dedupe_key=f"{alerts.DOMAIN_AUTH}:{check.domain}:{digest}",
            dedupe_window=DOMAIN_ALERT_WINDOW,
            now=now,
        )
    return check
