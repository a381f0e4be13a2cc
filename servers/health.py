"""Health sweep: probe each pool server, keep every result, and move servers down and up.

- SMTP: connect, EHLO, STARTTLS and AUTH as configured, NOOP, QUIT, each with a timeout;
  SendGrid: an authenticated API call (servers/transports/*.probe).
- Every result becomes a HealthCheck row (latency, failed stage, error) and counts in the
  server's daily stats (health_checks, health_failures).
- N consecutive failures (Configuration.health_failures_to_down, default 2) mark an active
  server down; one success brings a down server back up. state.py sends server_down and
  server_up; this module sends health_check_failed for every failed probe.

Which servers are probed: in-pool, configured servers that are active or down, and
paused-blocklisted ones. A blocklisted server is probed so that, when the listing clears,
it comes back knowing whether it is reachable; its results are recorded and counted but
cannot change its state (state.py only moves active ↔ down). Paused-manual servers are not
probed: an operator took them out, often because they are broken, and resuming one puts it
back in the next sweep. Unconfigured slots have nothing to probe.

Each server is due when its last check is older than the active configuration's
health_check_interval_seconds. The beat task runs every minute; a server is claimed with a
conditional UPDATE of last_health_check_at before its probe, so overlapping sweeps (a slow
sweep, two beats) never probe or count the same server twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import state, stats
from .configuration import active_configuration
from .models import HealthCheck, Server, ServerState
from .signals import health_check_failed
from .transport_config import transport_config
from .transports.base import ProbeResult, TransportConfig, probe

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 300
DEFAULT_FAILURES_TO_DOWN = 2
MAX_THREADS = 32
# Beat ticks every minute and a sweep takes a moment, so a server checked "exactly one
# interval ago" would otherwise slip to the next tick.
DUE_SLACK = dt.timedelta(seconds=5)
PROBED_STATES = (ServerState.ACTIVE, ServerState.DOWN, ServerState.PAUSED_BLOCKLISTED)


@dataclass(frozen=True)
class CheckOutcome:
    server: Server
    check: HealthCheck
    transition: str = ""  # "down", "up" or ""


def interval() -> dt.timedelta:
    config = active_configuration()
    return dt.timedelta(seconds=config.health_check_interval_seconds if config else DEFAULT_INTERVAL_SECONDS)


def failures_to_down() -> int:
    config = active_configuration()
    return max(1, config.health_failures_to_down if config else DEFAULT_FAILURES_TO_DOWN)


def probed_servers() -> list[Server]:
    servers = Server.objects.filter(in_pool=True, state__in=PROBED_STATES).order_by("priority", "kind", "slot")
    return [s for s in servers if s.is_configured]


def due_servers(*, now: dt.datetime | None = None) -> list[Server]:
    now = now or timezone.now()
    cutoff = now - interval() + DUE_SLACK
    return [s for s in probed_servers() if s.last_health_check_at is None or s.last_health_check_at <= cutoff]


def probe_config(server: Server) -> TransportConfig:
    """The server's transport settings, with no probe step allowed to wait longer than a connect:
    a relay that takes 30 s to answer EHLO is not healthy."""
    config = transport_config(server)
    return dataclasses.replace(config, command_timeout=min(config.command_timeout, config.connect_timeout))


def probe_server(server: Server) -> ProbeResult:
    try:
        config = probe_config(server)
    except ValueError as exc:
        return ProbeResult(ok=False, stage_failed="config", error=f"config: {exc}", latency_ms=0.0)
    try:
        return probe(config)
    except Exception as exc:  # a probe must report, never take the sweep down with it
        log.exception("health probe of %s crashed", server.name)
        return ProbeResult(ok=False, stage_failed="probe", error=f"probe crashed: {exc!r}", latency_ms=0.0)


def check_server(server: Server, *, now: dt.datetime | None = None) -> HealthCheck:
    """Probe one server now and record the result (with any state transition)."""
    now = now or timezone.now()
    Server.objects.filter(pk=server.pk).update(last_health_check_at=now)
    return record(server, probe_server(server), now=now).check


def record(server: Server, result: ProbeResult, *, now: dt.datetime, threshold: int | None = None) -> CheckOutcome:
    """Keep the probe's result and apply the consecutive-failure rule."""
    threshold = threshold or failures_to_down()
    with transaction.atomic():
        check = HealthCheck.objects.create(
            server=server,
            checked_at=now,
            ok=result.ok,
            stage="" if result.ok else result.stage_failed[:20],
            error="" if result.ok else result.error,
            latency_ms=result.latency_ms,
        )
        stats.record(server.pk, {"health_checks": 1, "health_failures": 0 if result.ok else 1})
        transition = ""
        if result.ok:
            Server.objects.filter(pk=server.pk).update(
                consecutive_health_failures=0, last_health_ok=True, last_health_check_at=now
            )
            server.consecutive_health_failures, server.last_health_ok = 0, True
            if state.mark_up(server):
                transition = "up"
        else:
            Server.objects.filter(pk=server.pk).update(
                consecutive_health_failures=F("consecutive_health_failures") + 1,
                last_health_ok=False,
                last_health_check_at=now,
            )
            failures = Server.objects.values_list("consecutive_health_failures", flat=True).get(pk=server.pk)
            server.consecutive_health_failures, server.last_health_ok = failures, False
            error, stage = result.error, result.stage_failed
            transaction.on_commit(
                lambda: health_check_failed.send(sender=Server, server=server, error=error, stage=stage)
            )
            if failures >= threshold and state.mark_down(
                server, error=f"{failures} health check{'s' if failures != 1 else ''} failed in a row; last: {result.error}"
            ):
                transition = "down"
    server.last_health_check_at = now
    return CheckOutcome(server=server, check=check, transition=transition)


def claim(servers: list[Server], *, now: dt.datetime) -> list[Server]:
    """Keep the servers whose last_health_check_at this sweep moved forward itself."""
    claimed = []
    for server in servers:
        previous = server.last_health_check_at
        unchanged = Q(last_health_check_at=None) if previous is None else Q(last_health_check_at=previous)
        if Server.objects.filter(unchanged, pk=server.pk).update(last_health_check_at=now):
            claimed.append(server)
    return claimed


def sweep(
    *, force: bool = False, now: dt.datetime | None = None, servers: list[Server] | None = None
) -> list[CheckOutcome]:
    """Probe the due servers (every probed server with force) concurrently and record the results."""
    now = now or timezone.now()
    if servers is None:
        servers = probed_servers() if force else due_servers(now=now)
    servers = claim(servers, now=now)
    if not servers:
        return []
    threshold = failures_to_down()
    # Probes run in threads so a sweep takes about one timeout, not one per server; the
    # database is written from this thread only.
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(servers))) as pool:
        results = list(pool.map(probe_server, servers))
    return [
        record(server, result, now=now, threshold=threshold)
        for server, result in zip(servers, results, strict=True)
    ]
