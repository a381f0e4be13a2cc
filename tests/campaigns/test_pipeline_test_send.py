"""A campaign's test send: one message, merged with the list's first prospect, through the pool."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy

import pytest

from campaigns import services
from campaigns.models import Message
from mailops.errors import DomainError
from tests.support.pipeline import campaign, prospect_list, relay_server

pytestmark = pytest.mark.django_db


def test_a_test_send_reaches_one_address_merged_with_a_real_prospect(relay):
    relay_server(1, relay)
    draft = campaign(prospect_list(3), from_email="sales@viajes-sol.es", reply_to="replies@viajes-sol.es")

    result = services.campaign_test_send(campaign=draft, to="boss@agency.es")

    assert result["success"] is True and result["server"] == "SMTP Server 1"
    (received,) = relay.messages
    assert received.rcpt_tos == ("boss@agency.es",)
    parsed = message_from_bytes(received.data, policy=default_policy)
    assert parsed["Subject"] == "[TEST] Rates for Travel 0"
    assert "Hello Agent 0 of Travel 0" in parsed.get_body(preferencelist=("plain",)).get_content()
    draft.refresh_from_db()
    assert draft.status == "draft" and draft.total == 0
    assert not Message.objects.filter(campaign=draft).exists()


def test_a_test_send_to_a_bad_address_is_refused(relay):
    relay_server(1, relay)
    draft = campaign(prospect_list(1), from_email="sales@viajes-sol.es", reply_to="")

    with pytest.raises(DomainError):
        services.campaign_test_send(campaign=draft, to="not an address")
    assert relay.messages == []
