"""Small factories for the monitoring tests: servers, configurations and daily stats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from servers.daytime import sending_day
from servers.models import Configuration, Server, ServerDailyStat, ServerKind, ServerState, WarmupSchedule
from servers.relay import Relay


def make_server(slot: int, **fields: Any) -> Server:
    defaults: dict[str, Any] = {
        "kind": ServerKind.SMTP,
        "name": f"SMTP Server {slot}",
        "host": "127.0.0.1",
        "port": 1,
        "security": "none",
        "state": ServerState.ACTIVE,
        "warmup_enabled": False,
        "ip_address": f"192.0.2.{slot}",
        "helo_name": "client.mailops.test",
    }
    defaults.update(fields)
    return Server.objects.create(slot=slot, **defaults)


def make_relay_server(slot: int, relay: Relay, **fields: Any) -> Server:
    return make_server(slot, host=relay.host, port=relay.port, security=relay.security, verify_tls=False, **fields)


def default_schedule() -> WarmupSchedule:
    # Transactional tests flush the seeded rows, so make the seed's 6-day schedule when it is gone.
    schedule, _ = WarmupSchedule.objects.get_or_create(
        key="default-6-day", defaults={"name": "Default 6-day", "steps": [50, 100, 200, 300, 400]}
    )
    return schedule


def make_configuration(**fields: Any) -> Configuration:
    defaults: dict[str, Any] = {
        "name": "Test pool",
        "tier": "custom",
        "is_active": True,
        "server_count": 1,
        "daily_limit_per_server": 500,
        "warmup_schedule": default_schedule(),
    }
    defaults.update(fields)
    Configuration.objects.filter(is_active=True).update(is_active=False)
    return Configuration.objects.create(**defaults)


def stat(server: Server, days_ago: int = 0, *, today: dt.date | None = None, **counts: Any) -> ServerDailyStat:
    day = (today or sending_day()) - dt.timedelta(days=days_ago)
    row, _ = ServerDailyStat.objects.update_or_create(server=server, day=day, defaults=counts)
    return row


def admin_inbox(settings_fixture: Any, relay: Relay, *, interval: int | None = None) -> None:
    """Aim the alert transport at `relay` and give mailops an admin to mail."""
    settings_fixture.ADMINS = [("Ops", "ops@mailops.test")]
    settings_fixture.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings_fixture.EMAIL_HOST = relay.host
    settings_fixture.EMAIL_PORT = relay.port
    settings_fixture.EMAIL_USE_TLS = False
    settings_fixture.EMAIL_HOST_USER = ""
    settings_fixture.EMAIL_HOST_PASSWORD = ""
    settings_fixture.EMAIL_TIMEOUT = 3
    if interval is not None:
        settings_fixture.MAILOPS = {**settings.MAILOPS, "ALERT_MAIL_MIN_INTERVAL_SECONDS": interval}
