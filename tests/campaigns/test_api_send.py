"""POST /api/send/: response shapes, field errors, auth, header injection and Idempotency-Key."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from campaigns.models import IdempotencyKey, Message
from tests.support.engine import make_config, make_server

pytestmark = pytest.mark.django_db

URL = "/api/send/"
BODY = {"to": "ana@example.com", "subject": "Welcome", "html": "<p>Hi</p>", "text": "Hi"}


@pytest.fixture
def pool(relay):
    make_server(relay, name="SMTP Server 1", ip="203.0.113.7")
    make_config()
    return relay


def test_a_send_returns_the_seeds_success_shape(operator_api, pool):
    response = operator_api.post(URL, BODY, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body == {"success": True, "server": "SMTP Server 1", "messageId": body["messageId"],
                    "ipAddress": "203.0.113.7"}
    assert body["messageId"].startswith("<") and body["messageId"].endswith(">")
    assert len(pool.messages) == 1


def test_a_token_authenticates_a_program(api_client, operator, pool):
    token = Token.objects.create(user=operator)
    response = api_client.post(URL, BODY, format="json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200


def test_a_bad_address_is_a_400_with_field_errors(operator_api, pool):
    response = operator_api.post(URL, {**BODY, "to": "not-an-address"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert "to" in body["fields"]
    assert pool.messages == []


def test_a_missing_subject_is_a_400_naming_it(operator_api, pool):
    response = operator_api.post(URL, {"to": "ana@example.com", "text": "x"}, format="json")
    assert response.status_code == 400
    assert "subject" in response.json()["fields"]


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "Hi\r\n"},
        {"from": "team@example.com\nBcc: victim@example.com"},
        {"replyTo": "a@example.com\r\nX: y"},
        {"headers": {"X-Note": "a\r\nBcc: victim@example.com"}},
    ],
)
def test_header_injection_is_a_400_and_nothing_is_sent(operator_api, pool, change):
    response = operator_api.post(URL, {**BODY, **change}, format="json")
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert pool.messages == []
    assert not Message.objects.exists()


def test_anonymous_callers_get_401(api_client, pool):
    response = api_client.post(URL, BODY, format="json")
    assert response.status_code == 401
    assert pool.messages == []


def test_viewers_get_403(viewer_api, pool):
    response = viewer_api.post(URL, BODY, format="json")
    assert response.status_code == 403
    assert pool.messages == []


def test_a_deferred_send_is_202_with_retry_at(operator_api, relay):
    make_server(relay)
    make_config()
    relay.set_down()
    response = operator_api.post(URL, BODY, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is False and body["retryAt"]


def test_the_same_idempotency_key_sends_once(operator_api, pool):
    first = operator_api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    second = operator_api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert len(pool.messages) == 1
    assert Message.objects.count() == 1


def test_an_idempotency_key_reused_with_another_body_is_refused(operator_api, pool):
    operator_api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    response = operator_api.post(URL, {**BODY, "subject": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="order-43")
    assert response.status_code == 422
    assert "different request body" in response.json()["error"]
    assert len(pool.messages) == 1


def test_a_key_still_being_processed_is_a_409(operator_api, operator, pool):
    from campaigns.api_send import _request_hash

    data = {**BODY, "from": "", "replyTo": "", "headers": {}}
    IdempotencyKey.objects.create(user=operator, key="busy", request_hash=_request_hash(data))
    response = operator_api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="busy")
    assert response.status_code == 409
    assert pool.messages == []


def test_a_refused_request_leaves_its_key_free(operator_api, pool):
    bad = operator_api.post(URL, {**BODY, "to": "nope"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert bad.status_code == 400
    good = operator_api.post(URL, BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert good.status_code == 200


def test_the_endpoint_is_in_the_openapi_schema(operator_client):
    response = operator_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/send/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    fields = response.json()["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]["properties"]
    assert {"to", "subject", "html", "text", "from", "replyTo", "headers"} <= set(fields)
