"""Operators' writes on servers and on the active configuration's runtime settings.

Loading a preset or a custom configuration lives in servers/configuration.py; this module
covers what an operator tunes afterwards (intervals, rotation, routing, warm-up, a single
server's credentials), keeping the same rules: secrets are write-only, every value that
ends up in an SMTP command or a header is checked for injection, and caps follow at once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Any

from django.db import transaction
from django.utils import timezone

from mailops.errors import DomainError

from . import quota, state
from .configuration import _check_strategy, active_configuration
from .models import Configuration, Server, ServerKind, ServerState, WarmupSchedule
from .routing import validate_rules

# Values below these would hammer relays and DNSBLs; above them a problem goes unseen for days.
LIMITS = {
    "health_check_interval_seconds": (30, 86_400),
    "health_failures_to_down": (1, 50),
    "blocklist_interval_seconds": (300, 7 * 86_400),
    "min_delay_seconds": (0, 3_600),
}
CONFIG_FIELDS = {
    "name",
    "rotation_strategy",
    "warmup_enabled",
    "routing_rules",
    "strict_routing",
    *LIMITS,
}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?)*\.?$")
_REGION = re.compile(r"^[A-Za-z0-9_-]{0,20}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _bounded(name: str, value: Any) -> float | int:
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise DomainError(f"{_camel(name)} must be a number from {low:,} to {high:,} (got {value!r})", field=_camel(name))
    return value


@transaction.atomic
def configuration_update(*, changes: dict[str, Any]) -> Configuration:
    """Change the active configuration's runtime settings; sweeps and the dispatcher read them on their next run.

    warm-up and the delay are copied to the pool's SMTP servers (as loading a preset does),
    and today's caps are recomputed so a change of warm-up takes effect immediately.
    """
    unknown = set(changes) - CONFIG_FIELDS
    if unknown:
        raise DomainError(f"cannot change {', '.join(sorted(map(_camel, unknown)))} here", field=_camel(sorted(unknown)[0]))
    config = Configuration.objects.select_for_update().filter(is_active=True).first()
    if config is None:
        raise DomainError("no configuration is active yet; load a preset first (POST /api/email-config/multi-server)")
    clean: dict[str, Any] = {}
    for name, value in changes.items():
        if name in LIMITS:
            clean[name] = _bounded(name, value)
        elif name == "rotation_strategy":
            clean[name] = _check_strategy(value)
        elif name == "routing_rules":
            clean[name] = validate_routing_rules(value)
        elif name == "name":
            value = (value or "").strip()
            if not value or len(value) > 120 or _CONTROL.search(value):
                raise DomainError("name must be 1 to 120 printable characters", field="name")
            clean[name] = value
        else:
            if not isinstance(value, bool):
                raise DomainError(f"{_camel(name)} must be true or false", field=_camel(name))
            clean[name] = value
    for name, value in clean.items():
        setattr(config, name, value)
    if clean:
        config.save(update_fields=list(clean))

    pool = Server.objects.filter(kind=ServerKind.SMTP, in_pool=True)
    copied = {k: clean[k] for k in ("warmup_enabled", "min_delay_seconds") if k in clean}
    if copied:
        pool.update(**copied)
    if "warmup_enabled" in copied:
        for server in pool.select_related("warmup_schedule"):
            quota.sync_cap(server)
    return config


def validate_routing_rules(rules: Any) -> dict[str, str]:
    clean = validate_rules(rules)
    for suffix, region in clean.items():
        if not _HOSTNAME.match(suffix.lstrip(".")) or not _REGION.match(region):
            raise DomainError(
                f"bad routing rule {suffix!r}: {region!r}; a rule maps a domain suffix such as \".es\" "
                "to a region name of letters, digits, '-' or '_'",
                field="routingRules",
            )
    return clean


# --- servers ------------------------------------------------------------------------------------

SERVER_FIELDS = {
    "name", "in_pool", "host", "port", "security", "verify_tls", "username", "password", "api_key",
    "ip_address", "bind_source_address", "helo_name", "region", "priority", "daily_limit",
    "min_delay_seconds", "warmup_enabled", "warmup_started_on", "warmup_schedule",
}


def _check_server_values(values: dict[str, Any]) -> None:
    """Refuse anything that would end up as a broken or injected SMTP command (EHLO, AUTH) or header."""
    host = values.get("host")
    if host and not _is_host(host):
        raise DomainError(f"host {host!r} is not a host name or IP address", field="host")
    helo = values.get("helo_name")
    if helo and not _HOSTNAME.match(helo):
        raise DomainError(f"heloName {helo!r} must be a host name such as mail.example.com", field="heloName")
    for name in ("username", "password", "api_key", "name"):
        value = values.get(name)
        if value and _CONTROL.search(value):
            raise DomainError(f"{_camel(name)} cannot contain line breaks or control characters", field=_camel(name))
    region = values.get("region")
    if region and not _REGION.match(region):
        raise DomainError("region must be up to 20 letters, digits, '-' or '_' (e.g. EU)", field="region")
    if "port" in values and not 1 <= int(values["port"]) <= 65535:
        raise DomainError("port must be from 1 to 65535", field="port")
    if "priority" in values and values["priority"] not in (1, 2):
        raise DomainError("priority must be 1 (primary) or 2 (overflow/backup)", field="priority")
    if "min_delay_seconds" in values:
        _bounded("min_delay_seconds", values["min_delay_seconds"])


def _is_host(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(value))


def _settle_state(server: Server) -> None:
    """A server gains or loses credentials: unconfigured ↔ active. Paused and down servers keep their state."""
    if not server.is_configured:
        if server.state != ServerState.UNCONFIGURED:
            server.state, server.state_reason = ServerState.UNCONFIGURED, "no credentials: set the host (or API key)"
            server.state_changed_at = timezone.now()
    elif server.state == ServerState.UNCONFIGURED:
        server.state, server.state_reason, server.state_changed_at = ServerState.ACTIVE, "", timezone.now()


@transaction.atomic
def server_create(*, kind: str, slot: int | None = None, **values: Any) -> Server:
    unknown = set(values) - SERVER_FIELDS
    if unknown:
        raise DomainError(f"unknown field(s): {', '.join(sorted(map(_camel, unknown)))}", field=_camel(sorted(unknown)[0]))
    if kind not in ServerKind.values:
        raise DomainError(f"kind must be one of {', '.join(ServerKind.values)}", field="kind")
    _check_server_values(values)
    if slot is None:
        last = Server.objects.filter(kind=kind).order_by("-slot").values_list("slot", flat=True).first() or 0
        slot = last + 1
    elif Server.objects.filter(kind=kind, slot=slot).exists():
        raise DomainError(f"{kind} slot {slot} is taken; leave slot out to use the next free one", field="slot")
    if not values.get("name"):
        values["name"] = f"SMTP Server {slot}" if kind == ServerKind.SMTP else f"SendGrid {slot}"
    server = Server(kind=kind, slot=slot, **values)
    if kind == ServerKind.SENDGRID:
        server.warmup_enabled = values.get("warmup_enabled", False)
        server.priority = values.get("priority", 2)
    _settle_state(server)
    server.save()
    quota.sync_cap(server)
    return server


@transaction.atomic
def server_update(*, server: Server, clear_secrets: Collection[str] = (), **changes: Any) -> Server:
    """Change a server. A blank password or API key keeps the stored one (secrets are write-only);
    `clear_secrets` names the ones to remove on purpose."""
    unknown = set(changes) - SERVER_FIELDS
    if unknown:
        raise DomainError(f"cannot change {', '.join(sorted(map(_camel, unknown)))}", field=_camel(sorted(unknown)[0]))
    bad = set(clear_secrets) - {"password", "api_key"}
    if bad:
        raise DomainError("only password and apiKey can be cleared", field="clearSecrets")
    for secret in ("password", "api_key"):
        if secret in changes and not changes[secret]:
            del changes[secret]
        if secret in clear_secrets:
            changes[secret] = ""
    _check_server_values(changes)
    server = Server.objects.select_for_update().get(pk=server.pk)
    for name, value in changes.items():
        setattr(server, name, value)
    _settle_state(server)
    server.save()
    quota.sync_cap(server)
    return server


def server_delete(*, server: Server) -> None:
    """Only a server outside the pool may go; its history goes with it, so pool servers are refused."""
    if server.in_pool:
        raise DomainError(
            f"{server.name} is in the active pool; set inPool to false first (its history is deleted with it)",
            field="inPool",
        )
    server.delete()


def server_pause(*, server: Server, reason: str = "") -> Server:
    reason = " ".join((reason or "paused by an operator").split())[:500]
    if not state.pause_manual(server, reason=reason):
        raise DomainError(f"a {server.state} server cannot be paused", field="state")
    return server


def server_resume(*, server: Server) -> Server:
    """Only an operator's own pause can be lifted here: a blocklisted server resumes when it is delisted."""
    if server.state == ServerState.PAUSED_BLOCKLISTED:
        raise DomainError(
            f"{server.name} is paused because it is blocklisted ({server.state_reason}); it resumes on its own "
            "once every blocklist answers clear (run a blocklist check after requesting delisting)",
            field="state",
        )
    if not state.resume_manual(server):
        raise DomainError(f"only a server paused by an operator can be resumed; this one is {server.state}", field="state")
    return server


def warmup_schedule_by_key(key: str | None) -> WarmupSchedule | None:
    if not key:
        return None
    found = WarmupSchedule.objects.filter(key=key).first()
    if found is None:
        valid = ", ".join(WarmupSchedule.objects.values_list("key", flat=True))
        raise DomainError(f"unknown warm-up schedule {key!r}; valid schedules are: {valid}", field="warmupSchedule")
    return found


def active_configuration_or_error() -> Configuration:
    config = active_configuration()
    if config is None:
        raise DomainError("no configuration is active yet; load a preset first (POST /api/email-config/multi-server)")
    return config
