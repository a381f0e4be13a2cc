from __future__ import annotations

import datetime as dt
import ipaddress
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.deletion import ProtectedError
from django.db.models.signals import pre_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .daytime import sending_day
from .fields import EncryptedTextField

DAYS_PER_MONTH = 30


class Tier(models.TextChoices):
    STARTER = "starter", _("Starter")
    PROFESSIONAL = "professional", _("Professional")
    BUSINESS = "business", _("Business")
    ENTERPRISE = "enterprise", _("Enterprise")
    HYBRID = "hybrid", _("Hybrid")
    SPECIALIZED = "specialized", _("Specialized")
    CUSTOM = "custom", _("Custom")


class RotationStrategy(models.TextChoices):
    ROUND_ROBIN = "round-robin", _("Round-robin")
    RANDOM = "random", _("Random")
    LEAST_USED = "least-used", _("Least used")
    BEST_PERFORMANCE = "best-performance", _("Best performance")


class WarmupSchedule(models.Model):
    """Daily caps for a new IP. Past the last step the server sends its full daily limit."""

    class Unit(models.TextChoices):
        EMAILS = "emails", _("emails per day")
        PERCENT = "percent", _("percent of the daily limit")

    key = models.SlugField(unique=True)
    name = models.CharField(max_length=100)
    unit = models.CharField(max_length=10, choices=Unit.choices, default=Unit.EMAILS)
    steps = models.JSONField(help_text=_("Caps for day 1, 2, …; the day after the last step is full capacity."))
    is_builtin = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name

    @property
    def full_capacity_day(self) -> int:
        return len(self.steps) + 1

    def cap_for_day(self, day: int, daily_limit: int) -> int:
        if day < 1:
            day = 1
        if day > len(self.steps):
            return daily_limit
        step = int(self.steps[day - 1])
        if self.unit == self.Unit.PERCENT:
            step = int(Decimal(daily_limit * step / 100).quantize(Decimal(1), ROUND_HALF_UP))
        return max(0, min(step, daily_limit))

    def describe(self) -> str:
        suffix = "%" if self.unit == self.Unit.PERCENT else ""
        return "/".join(f"{s}{suffix}" for s in self.steps) + "/full"


class Preset(models.Model):
    key = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    tier = models.CharField(max_length=20, choices=Tier.choices)
    recommended = models.BooleanField(default=False)
    best_for = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=100)
    smtp_servers = models.PositiveIntegerField()
    daily_limit_per_server = models.PositiveIntegerField()
    sendgrid_daily_limit = models.PositiveIntegerField(default=0)
    monthly_cost = models.DecimalField(max_digits=9, decimal_places=2)
    smtp_monthly_cost = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    sendgrid_monthly_cost = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True)
    setup_cost = models.DecimalField(max_digits=9, decimal_places=2, default=0)
    regions = models.JSONField(
        default=list, blank=True, help_text=_('Region of each server in turn, e.g. ["US","US","EU"]; empty = no region.')
    )
    routing_rules = models.JSONField(default=dict, blank=True, help_text=_('Recipient TLD → region, e.g. {".es": "EU"}'))
    warmup_schedule = models.ForeignKey(WarmupSchedule, on_delete=models.PROTECT, related_name="presets")
    min_delay_seconds = models.FloatField(default=0)
    is_builtin = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["position", "key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"

    @property
    def emails_per_day(self) -> int:
        return self.smtp_servers * self.daily_limit_per_server + self.sendgrid_daily_limit

    @property
    def emails_per_month(self) -> int:
        return self.emails_per_day * DAYS_PER_MONTH

    @property
    def cost_per_1000(self) -> Decimal:
        return cost_per_1000(self.monthly_cost, self.emails_per_month)

    @property
    def include_sendgrid(self) -> bool:
        return self.sendgrid_daily_limit > 0


def cost_per_1000(monthly_cost: Decimal, emails_per_month: int) -> Decimal:
    if emails_per_month <= 0:
        return Decimal("0.00")
    return (Decimal(monthly_cost) * 1000 / emails_per_month).quantize(Decimal("0.01"), ROUND_HALF_UP)


@receiver(pre_delete, sender=Preset)
@receiver(pre_delete, sender=WarmupSchedule)
def _protect_builtins(sender, instance, **kwargs):
    if instance.is_builtin:
        raise ProtectedError(f"{instance} ships with mailops and cannot be deleted; edit it instead.", {instance})


class Configuration(models.Model):
    """The pool's settings. Exactly one row is active; switching keeps every server's history."""

    name = models.CharField(max_length=120)
    tier = models.CharField(max_length=20, choices=Tier.choices)
    preset = models.ForeignKey(Preset, null=True, blank=True, on_delete=models.SET_NULL, related_name="configurations")
    is_active = models.BooleanField(default=False)
    server_count = models.PositiveIntegerField()
    daily_limit_per_server = models.PositiveIntegerField()
    include_sendgrid = models.BooleanField(default=False)
    sendgrid_daily_limit = models.PositiveIntegerField(default=0)
    regions = models.JSONField(default=list, blank=True)
    routing_rules = models.JSONField(default=dict, blank=True)
    strict_routing = models.BooleanField(
        default=False, help_text=_("When a region has no capacity left, hold its mail instead of using other regions.")
    )
    rotation_strategy = models.CharField(
        max_length=20, choices=RotationStrategy.choices, default=RotationStrategy.ROUND_ROBIN
    )
    warmup_enabled = models.BooleanField(default=True)
    warmup_schedule = models.ForeignKey(WarmupSchedule, on_delete=models.PROTECT, related_name="configurations")
    min_delay_seconds = models.FloatField(default=0)
    health_check_interval_seconds = models.PositiveIntegerField(default=300)
    health_failures_to_down = models.PositiveIntegerField(default=2)
    blocklist_interval_seconds = models.PositiveIntegerField(default=3600)
    monthly_cost = models.DecimalField(max_digits=9, decimal_places=2, default=0)
    setup_cost = models.DecimalField(max_digits=9, decimal_places=2, default=0)
    created_at = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(default=timezone.now)
    # Round-robin position, advanced with a conditional UPDATE so every worker shares one cycle.
    rr_cursor = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-activated_at"]
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_config")]

    def __str__(self) -> str:
        return self.name

    @property
    def key(self) -> str:
        return self.preset.key if self.preset_id else "custom"

    @property
    def emails_per_day(self) -> int:
        return self.server_count * self.daily_limit_per_server + (self.sendgrid_daily_limit if self.include_sendgrid else 0)

    @property
    def emails_per_month(self) -> int:
        return self.emails_per_day * DAYS_PER_MONTH

    @property
    def cost_per_1000(self) -> Decimal:
        return cost_per_1000(self.monthly_cost, self.emails_per_month)


class ServerKind(models.TextChoices):
    SMTP = "smtp", "SMTP"
    SENDGRID = "sendgrid", "SendGrid"


class Security(models.TextChoices):
    STARTTLS = "starttls", "STARTTLS"
    TLS = "tls", _("Implicit TLS")
    NONE = "none", _("None")


class ServerState(models.TextChoices):
    ACTIVE = "active", _("Active")
    DOWN = "down", _("Down")
    PAUSED_BLOCKLISTED = "paused-blocklisted", _("Paused: blocklisted")
    PAUSED_MANUAL = "paused-manual", _("Paused by an operator")
    UNCONFIGURED = "unconfigured", _("Unconfigured")


class Server(models.Model):
    """One relay slot. Slots outlive configurations so their history is never lost."""

    kind = models.CharField(max_length=10, choices=ServerKind.choices, default=ServerKind.SMTP)
    slot = models.PositiveIntegerField(help_text=_("n in SMTP_HOST_n; SendGrid is slot 1 of its kind."))
    name = models.CharField(max_length=100)
    in_pool = models.BooleanField(
        default=True, help_text=_("Part of the active configuration. Servers left out keep their history.")
    )
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(default=587)
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    verify_tls = models.BooleanField(default=True)
    username = models.CharField(max_length=255, blank=True)
    password = EncryptedTextField(blank=True)
    api_key = EncryptedTextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True, help_text=_("Egress IP: bound as source, checked on DNSBLs."))
    bind_source_address = models.BooleanField(default=False, help_text=_("Bind ip_address as the source of connections."))
    helo_name = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=20, blank=True)
    priority = models.PositiveSmallIntegerField(default=1, help_text=_("1 is primary; 2 is overflow/backup."))
    daily_limit = models.PositiveIntegerField(default=500)
    min_delay_seconds = models.FloatField(default=0)
    state = models.CharField(max_length=20, choices=ServerState.choices, default=ServerState.UNCONFIGURED)
    state_reason = models.CharField(max_length=500, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)
    warmup_enabled = models.BooleanField(default=True)
    warmup_started_on = models.DateField(default=sending_day)
    warmup_manual_advance = models.PositiveIntegerField(default=0)
    warmup_schedule = models.ForeignKey(WarmupSchedule, null=True, blank=True, on_delete=models.PROTECT)
    reputation = models.FloatField(default=100.0)
    consecutive_health_failures = models.PositiveIntegerField(default=0)
    last_health_check_at = models.DateTimeField(null=True, blank=True)
    last_health_ok = models.BooleanField(null=True)
    suspect_until = models.DateTimeField(null=True, blank=True)
    # Pacing: the earliest moment the next message may leave, shared by every worker.
    next_send_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["priority", "kind", "slot"]
        constraints = [models.UniqueConstraint(fields=["kind", "slot"], name="one_server_per_slot")]
        indexes = [models.Index(fields=["in_pool", "state"])]

    def __str__(self) -> str:
        return self.name

    # --- a new sending IP starts its warm-up again ------------------------------------------
    #
    # Reputation belongs to the IP mail leaves from. A slot that gets its first credentials,
    # or a new host or egress IP, sends from an IP that has none yet, so its warm-up starts
    # over on today's sending day. The rule sits on save() because every edit path ends
    # there: the services (API, dashboard, loading a configuration) and the admin.

    _IDENTITY = ("kind", "host", "ip_address", "api_key", "warmup_started_on")

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any) -> Server:
        instance = super().from_db(db, field_names, values)
        instance._remember_sending_identity()
        return instance

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self._remember_sending_identity()

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if self._sends_from_a_new_ip(update_fields):
            self.warmup_started_on = sending_day()
            self.warmup_manual_advance = 0
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "warmup_started_on", "warmup_manual_advance"}
        super().save(*args, **kwargs)
        self._remember_sending_identity()

    def _remember_sending_identity(self) -> None:
        if set(self._IDENTITY) & self.get_deferred_fields():
            self._loaded_identity: tuple[bool, str, str, dt.date] | None = None
            return
        self._loaded_identity = (self.is_configured, _host_key(self.host), _ip_key(self.ip_address),
                                 self.warmup_started_on)

    def _sends_from_a_new_ip(self, update_fields: Any) -> bool:
        loaded = getattr(self, "_loaded_identity", None)
        if loaded is None or not self.is_configured:
            return False  # a new row starts today anyway; an unconfigured one sends nothing
        if update_fields is not None and not {"kind", "host", "ip_address", "api_key"} & set(update_fields):
            return False
        was_configured, host, ip, started_on = loaded
        if self.warmup_started_on != started_on:
            return False  # the operator chose the start date in this same edit (an IP warmed elsewhere)
        if not was_configured:
            return True
        # Clearing a value does not move the traffic to a new IP; only a new value does.
        new_host = _host_key(self.host)
        new_ip = _ip_key(self.ip_address)
        return bool(new_host and new_host != host) or bool(new_ip and new_ip != ip)

    @property
    def is_configured(self) -> bool:
        if self.kind == ServerKind.SENDGRID:
            return bool(self.api_key)
        return bool(self.host)

    @property
    def is_sendable(self) -> bool:
        return self.in_pool and self.state == ServerState.ACTIVE and self.is_configured

    def warmup_day(self, day: dt.date | None = None) -> int:
        """Derived from the start date plus manual advances, so a missed or doubled job cannot skew it."""
        day = day or sending_day()
        return max(1, (day - self.warmup_started_on).days + 1) + self.warmup_manual_advance

    def in_warmup(self, day: dt.date | None = None) -> bool:
        if not (self.warmup_enabled and self.warmup_schedule_id):
            return False
        return self.warmup_day(day) < self.warmup_schedule.full_capacity_day

    def full_capacity_on(self, day: dt.date | None = None) -> dt.date | None:
        if not self.in_warmup(day):
            return None
        day = day or sending_day()
        return day + dt.timedelta(days=self.warmup_schedule.full_capacity_day - self.warmup_day(day))

    def cap_for(self, day: dt.date | None = None) -> int:
        """Today's cap: min(warm-up cap, daily limit)."""
        if self.warmup_enabled and self.warmup_schedule_id:
            return self.warmup_schedule.cap_for_day(self.warmup_day(day), self.daily_limit)
        return self.daily_limit

    @property
    def display_ip(self) -> str:
        return self.ip_address or ("SendGrid cloud" if self.kind == ServerKind.SENDGRID else self.host)


def _host_key(host: str | None) -> str:
    """A host as DNS compares it: case and a trailing dot do not make it another host."""
    return (host or "").strip().rstrip(".").lower()


def _ip_key(ip: str | None) -> str:
    """An IP in one spelling (2001:DB8::1 and 2001:db8:0::1 are the same address)."""
    if not ip:
        return ""
    try:
        return str(ipaddress.ip_address(str(ip).strip()))
    except ValueError:
        return str(ip).strip()


class Quota(models.Model):
    """One row per (server, sending day). `used` only moves through conditional UPDATEs (servers/quota.py)."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="quotas")
    day = models.DateField()
    cap = models.PositiveIntegerField()
    used = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["server", "day"], name="one_quota_per_server_day"),
            models.CheckConstraint(condition=Q(used__gte=0), name="quota_used_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.day}: {self.used}/{self.cap}"

    @property
    def remaining(self) -> int:
        return max(0, self.cap - self.used)


class ServerDailyStat(models.Model):
    """Per-server daily aggregates, kept up to date as outcomes and events arrive."""

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="daily_stats")
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    # Of `sent`, those later reported undeliverable (an asynchronous bounce, a SendGrid
    # bounce or drop). They are in `bounced` too; delivered = sent - returned.
    returned = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    policy_blocks = models.PositiveIntegerField(default=0)
    health_checks = models.PositiveIntegerField(default=0)
    health_failures = models.PositiveIntegerField(default=0)
    listed = models.BooleanField(default=False)
    reputation = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["server", "day"]
        constraints = [models.UniqueConstraint(fields=["server", "day"], name="one_stat_per_server_day")]
        indexes = [models.Index(fields=["day"])]


class HealthCheck(models.Model):
    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="health_checks")
    checked_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    stage = models.CharField(max_length=20, blank=True, help_text=_("The stage that failed: connect, tls, auth, …"))
    error = models.TextField(blank=True)
    latency_ms = models.FloatField(null=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["server", "-checked_at"])]


class BlocklistCheck(models.Model):
    class Status(models.TextChoices):
        LISTED = "listed", _("Listed")
        CLEAR = "clear", _("Clear")
        ERROR = "error", _("Query error")
        UNKNOWN = "unknown", _("Unknown (timeout)")

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="blocklist_checks")
    checked_at = models.DateTimeField(default=timezone.now)
    ip_address = models.GenericIPAddressField()
    zone = models.CharField(max_length=255)
    status = models.CharField(max_length=10, choices=Status.choices)
    codes = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["server", "-checked_at"])]


class Alert(models.Model):
    class Level(models.TextChoices):
        INFO = "info", _("Info")
        WARNING = "warning", _("Warning")
        CRITICAL = "critical", _("Critical")

    created_at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, choices=Level.choices)
    kind = models.CharField(max_length=40)
    server = models.ForeignKey(Server, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    message = models.TextField()
    dedupe_key = models.CharField(max_length=200, blank=True, db_index=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # Set when the alert went out inside a digest instead of a mail of its own (rate limit,
    # or a kind that is never mailed alone). Pending for the digest: both are empty.
    digested_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"]), models.Index(fields=["acknowledged_at"])]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class DomainAuthCheck(models.Model):
    """One look at the sender domain's SPF, DKIM and DMARC records; recommendations read the latest."""

    checked_at = models.DateTimeField(default=timezone.now)
    domain = models.CharField(max_length=255)
    dkim_selector = models.CharField(max_length=100, blank=True)
    spf = models.TextField(null=True, blank=True)
    dkim = models.TextField(null=True, blank=True)
    dmarc = models.TextField(null=True, blank=True)
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        get_latest_by = "checked_at"

    def __str__(self) -> str:
        return f"{self.domain} at {self.checked_at:%Y-%m-%d %H:%M}"
