"""The egress IP as the connection's source address: what a relay sees when SMTP_BIND_n is on.

Every 127.0.0.x address is loopback on Linux, so a relay on 127.0.0.1 can tell a bound
127.0.0.11 apart from the 127.0.0.1 the OS would pick by itself.
"""

from __future__ import annotations

import pytest

from campaigns.models import MessageStatus
from campaigns.sender import send_batch
from servers import configuration, quota
from servers.daytime import sending_day
from servers.models import Server, ServerKind
from tests.support.engine import claim, make_campaign

pytestmark = pytest.mark.django_db


def send_through_slot_one(emails: list[str]) -> None:
    configuration.load_preset("starter")
    server = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    messages = claim(make_campaign(emails), server=server)
    day = sending_day()
    assert quota.reserve(server, len(messages), day=day) == len(messages)
    result = send_batch(server=server, messages=messages, day=day)
    assert result.counts[MessageStatus.SENT] == len(emails)


def test_with_smtp_bind_the_relay_sees_the_slots_egress_ip(relay, smtp_env, monkeypatch):
    smtp_env([relay.port])  # SMTP_IP_1 is 127.0.0.11
    monkeypatch.setenv("SMTP_BIND_1", "true")

    send_through_slot_one(["ana@example.com", "bob@example.com"])

    assert relay.peers == ["127.0.0.11"]  # one connection for the batch, from the bound address


def test_without_smtp_bind_the_os_picks_the_source_address(relay, smtp_env):
    smtp_env([relay.port])

    send_through_slot_one(["ana@example.com"])

    assert relay.peers == ["127.0.0.1"]
