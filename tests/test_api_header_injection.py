"""Header injection is refused wherever the API takes a value that ends up in a mail header
or an SMTP command: single sends, campaigns, and the servers' connection settings."""

from __future__ import annotations

import pytest

from campaigns.models import Campaign, Message, ProspectList
from servers.models import Server, ServerKind, ServerState

pytestmark = pytest.mark.django_db

INJECTIONS = ["\r\nBcc: victim@example.com", "\nBcc: victim@example.com", "\rX-Evil: 1", "\x00"]
SEND = {"to": "ana@example.com", "subject": "Hello", "text": "Hi"}
CAMPAIGN = {"name": "May", "fromEmail": "news@example.com", "fromName": "News", "subject": "Hello", "textBody": "Hi"}


@pytest.fixture
def pool(relay):
    return Server.objects.create(
        kind=ServerKind.SMTP, slot=1, name="Relay", host=relay.host, port=relay.port, security="none",
        state=ServerState.ACTIVE, warmup_enabled=False,
    )


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize(
    "field,make",
    [
        ("subject", lambda bad: {"subject": "Hello" + bad}),
        ("to", lambda bad: {"to": "ana@example.com" + bad}),
        ("from", lambda bad: {"from": "news@example.com" + bad}),
        ("replyTo", lambda bad: {"replyTo": "reply@example.com" + bad}),
        ("headers", lambda bad: {"headers": {"X-Campaign": "spring" + bad}}),
        ("headers", lambda bad: {"headers": {"X-Campaign" + bad: "spring"}}),
    ],
)
def test_a_single_send_with_an_injected_header_is_refused_and_nothing_leaves(operator_api, pool, relay, field, make, injection):
    response = operator_api.post("/api/send/", {**SEND, **make(injection)}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["success"] is False
    assert not Message.objects.exists()
    assert relay.messages == []


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("field", ["subject", "fromName", "fromEmail", "replyTo"])
def test_a_campaign_with_an_injected_header_is_refused(operator_api, field, injection):
    prospect_list = ProspectList.objects.create(name="L")
    body = {**CAMPAIGN, "list": prospect_list.pk, field: CAMPAIGN.get(field, "reply@example.com") + injection}
    response = operator_api.post("/api/campaigns/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]
    assert not Campaign.objects.exists()


def test_a_paused_campaign_cannot_be_edited_into_an_injection(operator_api):
    prospect_list = ProspectList.objects.create(name="L")
    campaign = Campaign.objects.create(name="C", prospect_list=prospect_list, from_email="a@example.com", subject="Hi", text_body="x", status="paused")
    response = operator_api.patch(f"/api/campaigns/{campaign.pk}/", {"subject": "Hi\r\nBcc: victim@example.com"}, format="json")
    assert response.status_code == 400
    campaign.refresh_from_db()
    assert campaign.subject == "Hi"


@pytest.mark.parametrize("injection", INJECTIONS)
@pytest.mark.parametrize("field", ["host", "heloName", "username", "password", "name", "region"])
def test_a_server_setting_that_would_inject_an_smtp_command_is_refused(operator_api, field, injection):
    response = operator_api.post("/api/servers/", {"host": "127.0.0.1", field: "value" + injection}, format="json")
    assert response.status_code == 400, response.json()
    assert not Server.objects.exists()
