"""Configuration services mirroring the seed: getPresets, loadPreset, createCustomConfig,
changeConfiguration and advanceWarmupDay.

Loading a configuration reuses server slots by (kind, slot number), so a server keeps its
warm-up progress, quota and statistics across every change; slots left out only leave the pool.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from mailops.errors import DomainError

from . import quota
from .models import (
    Configuration,
    Preset,
    RotationStrategy,
    Server,
    ServerKind,
    ServerState,
    Tier,
    WarmupSchedule,
)

DEFAULT_WARMUP = "default-6-day"
GEO_RULES = {".com": "US", ".eu": "EU", ".es": "EU", ".mx": "LATAM", ".br": "LATAM", ".ar": "LATAM"}
# Custom pools are priced like the seed's presets: $25 per SMTP server a month, $10 setup per
# server from five servers on, and SendGrid at the seed's two published plans.
SMTP_MONTHLY = Decimal(25)
SETUP_PER_SERVER = Decimal(10)
MAX_SERVERS = 500
MAX_DAILY_LIMIT = 1_000_000

# The FAQ: "¿Cuántos servidores necesito?"
VOLUME_LADDER = [(500, "starter"), (1500, "starter-triple"), (3000, "professional"), (6000, "business")]
FALLBACK_PRESET = "enterprise"


def get_presets() -> dict[str, Preset]:
    return {p.key: p for p in Preset.objects.select_related("warmup_schedule")}


def recommend_preset(emails_per_day: int) -> str:
    if emails_per_day < 0:
        raise DomainError("emails per day cannot be negative", field="emailsPerDay")
    for ceiling, key in VOLUME_LADDER:
        if emails_per_day <= ceiling:
            return key
    return FALLBACK_PRESET


def active_configuration() -> Configuration | None:
    return Configuration.objects.filter(is_active=True).select_related("preset", "warmup_schedule").first()


@dataclass
class Plan:
    """What applying a configuration changes, shown to the operator before confirming."""

    name: str
    tier: str
    server_count: int
    daily_limit_per_server: int
    include_sendgrid: bool
    sendgrid_daily_limit: int
    regions: list[str]
    routing_rules: dict[str, str]
    warmup_enabled: bool
    warmup_schedule: WarmupSchedule
    min_delay_seconds: float
    monthly_cost: Decimal
    setup_cost: Decimal
    preset: Preset | None = None
    servers_added: list[str] = field(default_factory=list)
    servers_kept: list[str] = field(default_factory=list)
    servers_removed: list[str] = field(default_factory=list)
    previous_capacity: int = 0

    @property
    def emails_per_day(self) -> int:
        return self.server_count * self.daily_limit_per_server + (self.sendgrid_daily_limit if self.include_sendgrid else 0)

    @property
    def emails_per_month(self) -> int:
        return self.emails_per_day * 30


def _plan_from_preset(key: str) -> Plan:
    preset = Preset.objects.select_related("warmup_schedule").filter(key=key).first()
    if preset is None:
        valid = ", ".join(Preset.objects.values_list("key", flat=True))
        raise DomainError(f"unknown preset '{key}'; valid presets are: {valid}", field="config", extra={"validPresets": valid.split(", ")})
    return Plan(
        name=preset.name,
        tier=preset.tier,
        server_count=preset.smtp_servers,
        daily_limit_per_server=preset.daily_limit_per_server,
        include_sendgrid=preset.include_sendgrid,
        sendgrid_daily_limit=preset.sendgrid_daily_limit,
        regions=_spread(list(preset.regions), preset.smtp_servers) if preset.regions else [],
        routing_rules=dict(preset.routing_rules),
        warmup_enabled=True,
        warmup_schedule=preset.warmup_schedule,
        min_delay_seconds=preset.min_delay_seconds,
        monthly_cost=preset.monthly_cost,
        setup_cost=preset.setup_cost,
        preset=preset,
    )


def _spread(regions: list[str], count: int) -> list[str]:
    """Region per server. A list as long as the pool is taken as is; a shorter one is spread in even blocks."""
    if len(regions) == count:
        return regions
    return [regions[i * len(regions) // count] for i in range(count)]


def _positive_int(value: Any, name: str, *, maximum: int) -> int:
    if isinstance(value, bool) or value is None:
        raise DomainError(f"{name} must be a whole number greater than zero", field=name)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise DomainError(f"{name} must be a whole number greater than zero, not {value!r}", field=name) from None
    if number != value and not (isinstance(value, str) and value.strip().isdigit()):
        raise DomainError(f"{name} must be a whole number, not {value!r}", field=name)
    if number <= 0:
        raise DomainError(f"{name} must be greater than zero (got {number})", field=name)
    if number > maximum:
        raise DomainError(f"{name} must be at most {maximum:,} (got {number:,})", field=name)
    return number


def sendgrid_monthly_estimate(daily_limit: int) -> Decimal:
    if daily_limit <= 0:
        return Decimal(0)
    return Decimal(20) if daily_limit <= 1500 else Decimal(90)


def _plan_custom(
    *,
    name: str,
    server_count: Any,
    daily_limit_per_server: Any,
    include_sendgrid: bool = False,
    sendgrid_daily_limit: Any = None,
    warmup_enabled: bool = True,
    regions: list[str] | None = None,
    rotation_strategy: str | None = None,
) -> Plan:
    name = (name or "").strip()
    if not name:
        raise DomainError("name is required", field="name")
    if len(name) > 120:
        raise DomainError("name must be at most 120 characters", field="name")
    count = _positive_int(server_count, "serverCount", maximum=MAX_SERVERS)
    limit = _positive_int(daily_limit_per_server, "dailyLimitPerServer", maximum=MAX_DAILY_LIMIT)
    sendgrid_limit = 0
    if include_sendgrid:
        # The seed's example omits sendGridDailyLimit; SendGrid then covers one more day of SMTP volume.
        sendgrid_limit = (
            count * limit
            if sendgrid_daily_limit in (None, "")
            else _positive_int(sendgrid_daily_limit, "sendGridDailyLimit", maximum=MAX_DAILY_LIMIT)
        )
    clean_regions: list[str] = []
    if regions:
        if not isinstance(regions, list) or not all(isinstance(r, str) and r.strip() for r in regions):
            raise DomainError("regions must be a list of region names such as [\"US\", \"EU\", \"LATAM\"]", field="regions")
        clean_regions = [r.strip().upper() for r in regions]
        if len(clean_regions) > count:
            raise DomainError(f"{len(clean_regions)} regions need at least {len(clean_regions)} servers", field="regions")
    schedule = WarmupSchedule.objects.get(key=DEFAULT_WARMUP)
    monthly = SMTP_MONTHLY * count + (sendgrid_monthly_estimate(sendgrid_limit) if include_sendgrid else 0)
    plan = Plan(
        name=name,
        tier=Tier.CUSTOM.value,
        server_count=count,
        daily_limit_per_server=limit,
        include_sendgrid=bool(include_sendgrid),
        sendgrid_daily_limit=sendgrid_limit,
        regions=_spread(sorted(set(clean_regions), key=clean_regions.index), count) if clean_regions else [],
        routing_rules={tld: region for tld, region in GEO_RULES.items() if region in clean_regions},
        warmup_enabled=bool(warmup_enabled),
        warmup_schedule=schedule,
        min_delay_seconds=0,
        monthly_cost=monthly,
        setup_cost=SETUP_PER_SERVER * count if count >= 5 else Decimal(0),
    )
    if rotation_strategy:
        _check_strategy(rotation_strategy)
    return plan


def _check_strategy(strategy: str) -> str:
    if strategy not in RotationStrategy.values:
        raise DomainError(
            f"unknown rotation strategy '{strategy}'; choose one of: {', '.join(RotationStrategy.values)}",
            field="rotationStrategy",
        )
    return strategy


def plan_change(kind: Literal["preset", "custom"], value: Any) -> Plan:
    """Validate and describe a change without applying it."""
    if kind == "preset":
        if not isinstance(value, str) or not value:
            raise DomainError("config must be a preset key such as \"professional\"", field="config")
        plan = _plan_from_preset(value)
    elif kind == "custom":
        if not isinstance(value, dict):
            raise DomainError("config must be an object with name, serverCount and dailyLimitPerServer", field="config")
        plan = _plan_custom(**_custom_kwargs(value))
    else:
        raise DomainError("type must be \"preset\" or \"custom\"", field="type")
    existing = {
        s.slot: s.name
        for s in Server.objects.filter(kind=ServerKind.SMTP, in_pool=True)
    }
    wanted = set(range(1, plan.server_count + 1))
    plan.servers_kept = [f"SMTP Server {n}" for n in sorted(wanted & existing.keys())]
    plan.servers_added = [f"SMTP Server {n}" for n in sorted(wanted - existing.keys())]
    plan.servers_removed = [existing[n] for n in sorted(existing.keys() - wanted)]
    current = active_configuration()
    plan.previous_capacity = current.emails_per_day if current else 0
    return plan


_CUSTOM_KEYS = {
    "name": "name",
    "serverCount": "server_count",
    "server_count": "server_count",
    "dailyLimitPerServer": "daily_limit_per_server",
    "daily_limit_per_server": "daily_limit_per_server",
    "includeSendGrid": "include_sendgrid",
    "include_sendgrid": "include_sendgrid",
    "sendGridDailyLimit": "sendgrid_daily_limit",
    "sendgrid_daily_limit": "sendgrid_daily_limit",
    "warmupEnabled": "warmup_enabled",
    "warmup_enabled": "warmup_enabled",
    "regions": "regions",
    "rotationStrategy": "rotation_strategy",
    "rotation_strategy": "rotation_strategy",
}


def _custom_kwargs(value: dict) -> dict:
    unknown = sorted(set(value) - _CUSTOM_KEYS.keys())
    if unknown:
        raise DomainError(
            f"unknown field(s) {', '.join(unknown)}; a custom configuration takes name, serverCount, "
            "dailyLimitPerServer, includeSendGrid, sendGridDailyLimit, warmupEnabled and regions",
            field=unknown[0],
        )
    kwargs = {_CUSTOM_KEYS[k]: v for k, v in value.items()}
    for flag in ("include_sendgrid", "warmup_enabled"):
        if flag in kwargs and not isinstance(kwargs[flag], bool):
            raise DomainError(f"{flag} must be true or false", field=flag)
    kwargs.setdefault("name", "")
    kwargs.setdefault("server_count", None)
    kwargs.setdefault("daily_limit_per_server", None)
    return kwargs


@transaction.atomic
def apply_plan(plan: Plan, *, rotation_strategy: str | None = None) -> Configuration:
    current = Configuration.objects.select_for_update().filter(is_active=True).first()
    strategy = _check_strategy(rotation_strategy) if rotation_strategy else (
        current.rotation_strategy if current else RotationStrategy.ROUND_ROBIN
    )
    Configuration.objects.filter(is_active=True).update(is_active=False)
    config = Configuration.objects.create(
        name=plan.name,
        tier=plan.tier,
        preset=plan.preset,
        is_active=True,
        server_count=plan.server_count,
        daily_limit_per_server=plan.daily_limit_per_server,
        include_sendgrid=plan.include_sendgrid,
        sendgrid_daily_limit=plan.sendgrid_daily_limit,
        regions=plan.regions,
        routing_rules=plan.routing_rules,
        strict_routing=current.strict_routing if current else False,
        rotation_strategy=strategy,
        warmup_enabled=plan.warmup_enabled,
        warmup_schedule=plan.warmup_schedule,
        min_delay_seconds=plan.min_delay_seconds,
        health_check_interval_seconds=current.health_check_interval_seconds if current else 300,
        health_failures_to_down=current.health_failures_to_down if current else 2,
        blocklist_interval_seconds=current.blocklist_interval_seconds if current else 3600,
        monthly_cost=plan.monthly_cost,
        setup_cost=plan.setup_cost,
        activated_at=timezone.now(),
    )
    _apply_slots(config)
    return config


def load_preset(key: str, *, rotation_strategy: str | None = None) -> Configuration:
    return apply_plan(plan_change("preset", key), rotation_strategy=rotation_strategy)


def create_custom_config(
    *,
    name: str,
    server_count: int,
    daily_limit_per_server: int,
    include_sendgrid: bool = False,
    sendgrid_daily_limit: int | None = None,
    warmup_enabled: bool = True,
    regions: list[str] | None = None,
    rotation_strategy: str | None = None,
) -> Configuration:
    plan = _plan_custom(
        name=name,
        server_count=server_count,
        daily_limit_per_server=daily_limit_per_server,
        include_sendgrid=include_sendgrid,
        sendgrid_daily_limit=sendgrid_daily_limit,
        warmup_enabled=warmup_enabled,
        regions=regions,
    )
    return apply_plan(plan, rotation_strategy=rotation_strategy)


def change_configuration(kind: Literal["preset", "custom"], value: Any) -> Configuration:
    rotation = value.get("rotationStrategy") if isinstance(value, dict) else None
    return apply_plan(plan_change(kind, value), rotation_strategy=rotation)


def set_rotation_strategy(*, strategy: str) -> Configuration:
    config = active_configuration()
    if config is None:
        raise DomainError("no configuration is active yet; load a preset first")
    config.rotation_strategy = _check_strategy(strategy)
    config.save(update_fields=["rotation_strategy"])
    return config


def save_as_preset(*, configuration: Configuration, key: str, name: str) -> Preset:
    from django.utils.text import slugify

    slug = slugify(key)
    if not slug:
        raise DomainError("key is required, e.g. \"my-pool\"", field="key")
    if Preset.objects.filter(key=slug).exists():
        raise DomainError(f"a preset named '{slug}' already exists; choose another key", field="key")
    return Preset.objects.create(
        key=slug,
        name=name or configuration.name,
        tier=Tier.CUSTOM.value,
        position=1000,
        smtp_servers=configuration.server_count,
        daily_limit_per_server=configuration.daily_limit_per_server,
        sendgrid_daily_limit=configuration.sendgrid_daily_limit if configuration.include_sendgrid else 0,
        monthly_cost=configuration.monthly_cost,
        setup_cost=configuration.setup_cost,
        regions=configuration.regions,
        routing_rules=configuration.routing_rules,
        warmup_schedule=configuration.warmup_schedule,
        min_delay_seconds=configuration.min_delay_seconds,
        best_for="Saved from a custom configuration",
    )


def _env_credentials(n: int) -> dict[str, Any]:
    """SMTP_HOST_n … SMTP_REGION_n, as in the seed, plus SMTP_SECURITY_n, SMTP_HELO_n,
    SMTP_VERIFY_TLS_n and SMTP_BIND_n. Only variables that are set are returned."""
    out: dict[str, Any] = {}
    mapping = {"HOST": "host", "USER": "username", "PASSWORD": "password", "IP": "ip_address", "REGION": "region",
               "SECURITY": "security", "HELO": "helo_name"}
    for suffix, attr in mapping.items():
        value = os.environ.get(f"SMTP_{suffix}_{n}")
        if value:
            out[attr] = value
    port = os.environ.get(f"SMTP_PORT_{n}")
    if port:
        try:
            out["port"] = int(port)
        except ValueError:
            raise DomainError(f"SMTP_PORT_{n} must be a port number, not {port!r}") from None
    if os.environ.get(f"SMTP_VERIFY_TLS_{n}", "").lower() in ("0", "false", "no"):
        out["verify_tls"] = False
    bind = os.environ.get(f"SMTP_BIND_{n}", "").strip().lower()
    if bind:
        # Binding SMTP_IP_n only works on a machine that owns it, so it is never guessed: an
        # unreadable value is refused rather than taken for either answer.
        if bind not in _TRUE | _FALSE:
            raise DomainError(f"SMTP_BIND_{n} must be true or false, not {bind!r}")
        out["bind_source_address"] = bind in _TRUE
    return out


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _apply_slots(config: Configuration) -> None:
    today_schedule = config.warmup_schedule
    for n in range(1, config.server_count + 1):
        server, created = Server.objects.get_or_create(
            kind=ServerKind.SMTP, slot=n, defaults={"name": f"SMTP Server {n}"}
        )
        creds = _env_credentials(n)
        for attr, value in creds.items():
            setattr(server, attr, value)
        if config.regions and "region" not in creds:
            server.region = config.regions[n - 1]
        elif not config.regions and "region" not in creds:
            server.region = ""
        server.in_pool = True
        server.priority = 1
        server.daily_limit = config.daily_limit_per_server
        server.min_delay_seconds = config.min_delay_seconds
        server.warmup_enabled = config.warmup_enabled
        server.warmup_schedule = today_schedule
        _settle_state(server)
        server.save()
        quota.sync_cap(server)
    Server.objects.filter(kind=ServerKind.SMTP, slot__gt=config.server_count).update(in_pool=False)

    sendgrid, _ = Server.objects.get_or_create(
        kind=ServerKind.SENDGRID, slot=1, defaults={"name": "SendGrid", "port": 443, "security": "tls"}
    )
    api_key = os.environ.get("SENDGRID_API_KEY")
    if api_key:
        sendgrid.api_key = api_key
    sendgrid.in_pool = config.include_sendgrid
    sendgrid.priority = 2
    sendgrid.daily_limit = config.sendgrid_daily_limit or 0
    sendgrid.warmup_enabled = False  # SendGrid's shared IPs are warmed by SendGrid.
    sendgrid.region = ""
    _settle_state(sendgrid)
    sendgrid.save()
    quota.sync_cap(sendgrid)


def _settle_state(server: Server) -> None:
    if not server.is_configured:
        server.state, server.state_reason = ServerState.UNCONFIGURED, "no credentials: set SMTP_HOST_n or edit the server"
        server.state_changed_at = timezone.now()
    elif server.state == ServerState.UNCONFIGURED:
        server.state, server.state_reason = ServerState.ACTIVE, ""
        server.state_changed_at = timezone.now()


def advance_warmup_day(server: Server | str) -> Server:
    """Skip one warm-up day (the seed warns this is not recommended)."""
    if isinstance(server, str):
        found = Server.objects.filter(name=server).first()
        if found is None:
            raise DomainError(f"no server named '{server}'", field="server")
        server = found
    if not server.warmup_enabled:
        raise DomainError(f"{server.name} is not warming up", field="server")
    Server.objects.filter(pk=server.pk).update(warmup_manual_advance=F("warmup_manual_advance") + 1)
    server.refresh_from_db()
    quota.sync_cap(server)
    return server


def configuration_summary(config: Configuration) -> dict[str, Any]:
    """The seed's response shape for a configuration."""
    return {
        "name": config.name,
        "tier": config.tier,
        "capacity": {"emailsPerDay": config.emails_per_day, "emailsPerMonth": config.emails_per_month},
        "servers": config.server_count,
        "cost": {"monthly": _number(config.monthly_cost), "setup": _number(config.setup_cost)},
    }


def preset_summary(preset: Preset) -> dict[str, Any]:
    return {
        "key": preset.key,
        "name": preset.name,
        "tier": preset.tier,
        "recommended": preset.recommended,
        "capacity": {"emailsPerDay": preset.emails_per_day, "emailsPerMonth": preset.emails_per_month},
        "servers": preset.smtp_servers,
        "dailyLimitPerServer": preset.daily_limit_per_server,
        "sendGridDailyLimit": preset.sendgrid_daily_limit,
        "cost": {"monthly": _number(preset.monthly_cost), "setup": _number(preset.setup_cost)},
        "costPer1000": _number(preset.cost_per_1000),
        "regions": preset.regions,
        "routingRules": preset.routing_rules,
        "warmup": {"schedule": preset.warmup_schedule.key, "days": preset.warmup_schedule.full_capacity_day},
        "delaySeconds": preset.min_delay_seconds,
        "bestFor": preset.best_for,
    }


def _number(value: Decimal) -> int | float:
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)
