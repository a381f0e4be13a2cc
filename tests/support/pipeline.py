"""Factories and a driver for pipeline tests: relay-backed servers, prospect lists, campaigns."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from django.utils import timezone

from campaigns import dispatch, services
from campaigns.models import Campaign, Message, MessageStatus, Prospect, ProspectList
from servers.models import Server, ServerKind, ServerState
from servers.relay import Relay

HTML = "<html><body><p>Hello {{ name }} of {{ company }},</p><p>Our rates for {{ city|default:\"your city\" }}.</p></body></html>"
TEXT = "Hello {{ name }} of {{ company }},\nOur rates for {{ city|default:\"your city\" }}.\n"


def relay_server(slot: int, relay: Relay, **fields: Any) -> Server:
    defaults: dict[str, Any] = {
        "kind": ServerKind.SMTP,
        "name": f"SMTP Server {slot}",
        "host": relay.host,
        "port": relay.port,
        "security": "none",
        "verify_tls": False,
        "state": ServerState.ACTIVE,
        "warmup_enabled": False,
        "daily_limit": 100_000,
        "min_delay_seconds": 0,
        "helo_name": "client.mailops.test",
        "ip_address": f"192.0.2.{slot}",
    }
    defaults.update(fields)
    return Server.objects.create(slot=slot, **defaults)


def prospect_list(count: int, *, name: str = "Agencies", domain: str = "agency.test", start: int = 0) -> ProspectList:
    plist = services.list_create(name=name)
    Prospect.objects.bulk_create(
        [
            Prospect(
                prospect_list=plist,
                email=f"agent{i}@{domain}",
                name=f"Agent {i}",
                company=f"Travel {i}",
                custom={"city": f"City {i % 7}"},
            )
            for i in range(start, start + count)
        ],
        batch_size=2000,
    )
    ProspectList.objects.filter(pk=plist.pk).update(prospect_count=count)
    plist.refresh_from_db()
    return plist


def campaign(plist: ProspectList, **fields: Any) -> Campaign:
    values: dict[str, Any] = {
        "name": "Spring rates",
        "prospect_list": plist,
        "from_email": "sales@mailops.test",
        "from_name": "Sales Team",
        "reply_to": "replies@mailops.test",
        "subject": "Rates for {{ company }}",
        "html_body": HTML,
        "text_body": TEXT,
    }
    values.update(fields)
    return services.campaign_create(**values)


def received(relays: Iterable[Relay]) -> Counter[str]:
    """How many times each recipient address reached any relay."""
    return Counter(rcpt.lower() for relay in relays for message in relay.messages for rcpt in message.rcpt_tos)


def status_counts(campaign: Campaign) -> Counter[str]:
    return Counter(Message.objects.filter(campaign=campaign).values_list("status", flat=True))


def drive(
    campaign: Campaign,
    *,
    timeout: float = 90.0,
    interval: float = 0.5,
    retry_deferred_now: bool = True,
    until: Callable[[], bool] | None = None,
) -> Campaign:
    """Run the dispatcher (as beat would) until the campaign leaves `running` or `until()` holds.

    With retry_deferred_now, deferred messages are made due at once: the backoff is
    minutes to hours, so the test plays the clock forward for those rows only.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if retry_deferred_now:
            Message.objects.filter(status=MessageStatus.DEFERRED, next_attempt_at__gt=timezone.now()).update(
                next_attempt_at=timezone.now()
            )
        dispatch.run_once()
        campaign.refresh_from_db()
        if until is not None:
            if until():
                return campaign
        elif campaign.status != Campaign.Status.RUNNING:
            return campaign
        time.sleep(interval)
    raise AssertionError(
        f"campaign {campaign.name!r} still {campaign.status} after {timeout}s: {dict(status_counts(campaign))}"
    )
