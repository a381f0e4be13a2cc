"""Factories for delivery-engine tests: servers aimed at loopback relays or the SendGrid
stand-in, an active configuration, campaigns and claimed messages."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.utils import timezone

from campaigns.models import Campaign, Message, MessageStatus, Prospect, ProspectList
from servers.models import Configuration, RotationStrategy, Server, ServerKind, ServerState, WarmupSchedule
from servers.relay import Relay

_slots = itertools.count(1)


def make_server(
    relay: Relay | None = None,
    *,
    name: str | None = None,
    region: str = "",
    priority: int = 1,
    daily_limit: int = 500,
    warmup: str | None = None,
    min_delay: float = 0.0,
    reputation: float = 100.0,
    ip: str | None = None,
    **fields: Any,
) -> Server:
    """An active SMTP server; aimed at `relay` when given, else at a closed loopback port."""
    slot = next(_slots) + 1000
    server = Server.objects.create(
        kind=ServerKind.SMTP,
        slot=slot,
        name=name or f"SMTP Server {slot}",
        host=relay.host if relay else "127.0.0.1",
        port=relay.port if relay else 9,
        security=relay.security if relay else "none",
        verify_tls=False,
        region=region,
        priority=priority,
        daily_limit=daily_limit,
        min_delay_seconds=min_delay,
        reputation=reputation,
        state=ServerState.ACTIVE,
        in_pool=True,
        warmup_enabled=warmup is not None,
        warmup_schedule=WarmupSchedule.objects.get(key=warmup) if warmup else None,
        ip_address=ip or f"127.0.0.{10 + slot % 200}",
        **fields,
    )
    return server


def make_sendgrid(api, *, daily_limit: int = 1500, api_key: str | None = None, **fields: Any) -> Server:
    """The SendGrid overflow server, aimed at the loopback stand-in (set SENDGRID_API_HOST too)."""
    return Server.objects.create(
        kind=ServerKind.SENDGRID,
        slot=next(_slots) + 1000,
        name="SendGrid",
        api_key=api_key if api_key is not None else api.api_key,
        priority=2,
        daily_limit=daily_limit,
        state=ServerState.ACTIVE,
        in_pool=True,
        warmup_enabled=False,
        **fields,
    )


def make_config(
    *,
    strategy: str = RotationStrategy.ROUND_ROBIN,
    routing_rules: dict[str, str] | None = None,
    strict_routing: bool = False,
) -> Configuration:
    Configuration.objects.filter(is_active=True).update(is_active=False)
    return Configuration.objects.create(
        name="test pool",
        tier="custom",
        is_active=True,
        server_count=Server.objects.filter(kind=ServerKind.SMTP, in_pool=True).count(),
        daily_limit_per_server=500,
        routing_rules=routing_rules or {},
        strict_routing=strict_routing,
        rotation_strategy=strategy,
        warmup_schedule=WarmupSchedule.objects.get(key="default-6-day"),
    )


def make_campaign(emails: list[str], *, subject: str = "Hello {{ first_name|default:\"there\" }}") -> Campaign:
    plist = ProspectList.objects.create(name="list")
    Prospect.objects.bulk_create(
        [Prospect(prospect_list=plist, email=e, name=f"Person {i}", company="ACME") for i, e in enumerate(emails)]
    )
    return Campaign.objects.create(
        name="campaign",
        prospect_list=plist,
        from_name="Sales",
        from_email="sales@example.com",
        subject=subject,
        html_body="<p>Hi {{ name }} from {{ company }}</p>",
        text_body="Hi {{ name }} from {{ company }}",
        status=Campaign.Status.RUNNING,
        total=len(emails),
    )


def claim(campaign: Campaign, *, server: Server | None = None, lease_seconds: int = 600) -> list[Message]:
    """Queued messages for every prospect of the campaign, claimed (`sending`) as the dispatcher would."""
    now = timezone.now()
    prospects = list(campaign.prospect_list.prospects.order_by("pk"))
    Message.objects.bulk_create(
        [
            Message(
                campaign=campaign,
                prospect=p,
                to_email=p.email,
                to_name=p.name,
                status=MessageStatus.SENDING,
                lease_expires_at=now + dt.timedelta(seconds=lease_seconds),
                server=server,
            )
            for p in prospects
        ]
    )
    return list(Message.objects.filter(campaign=campaign).order_by("pk"))


def recipients_of(relay: Relay) -> list[str]:
    return [rcpt for message in relay.messages for rcpt in message.rcpt_tos]
