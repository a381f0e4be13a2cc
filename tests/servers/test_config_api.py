from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db
URL = "/api/email-config/multi-server"


def test_applying_a_preset_answers_with_the_seeds_exact_shape(operator_api):
    response = operator_api.post(URL, {"type": "preset", "config": "professional"}, format="json")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "configuration": {
            "name": "Professional - Five Servers",
            "tier": "professional",
            "capacity": {"emailsPerDay": 2500, "emailsPerMonth": 75000},
            "servers": 5,
            "cost": {"monthly": 125, "setup": 50},
        },
    }


def test_a_custom_configuration_in_camel_case(operator_api):
    body = {"type": "custom", "config": {"name": "My Custom Setup", "serverCount": 8, "dailyLimitPerServer": 600, "includeSendGrid": True, "sendGridDailyLimit": 2000}}
    response = operator_api.post(URL, body, format="json")
    assert response.status_code == 200
    conf = response.json()["configuration"]
    assert conf["capacity"] == {"emailsPerDay": 6800, "emailsPerMonth": 204000}
    assert conf["tier"] == "custom" and conf["servers"] == 8


@pytest.mark.parametrize(
    "body,needle,field",
    [
        ({"type": "preset", "config": "platinum"}, "valid presets are", "config"),
        ({"type": "custom", "config": {"name": "x", "serverCount": 0, "dailyLimitPerServer": 500}}, "serverCount", "serverCount"),
        ({"type": "custom", "config": {"name": "x", "serverCount": -2, "dailyLimitPerServer": 500}}, "serverCount", "serverCount"),
        ({"type": "custom", "config": {"name": "x", "serverCount": 3, "dailyLimitPerServer": -1}}, "dailyLimitPerServer", "dailyLimitPerServer"),
        ({"type": "custom", "config": {"serverCount": 3, "dailyLimitPerServer": 10}}, "name", "name"),
        ({"type": "custom", "config": {"name": "x", "serverCount": 3, "dailyLimitPerServer": 10, "colour": "red"}}, "colour", "colour"),
        ({"type": "custom", "config": "professional"}, "config", "config"),
        ({"type": "preset", "config": {"name": "x"}}, "preset key", "config"),
        ({"type": "premium", "config": "professional"}, "type", "type"),
        ({"config": "professional"}, "type", "type"),
    ],
)
def test_bad_input_gets_a_400_naming_the_problem(operator_api, body, needle, field):
    response = operator_api.post(URL, body, format="json")
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert needle in payload["error"]
    assert field in payload["fields"]


def test_unknown_preset_lists_every_valid_key(operator_api):
    payload = operator_api.post(URL, {"type": "preset", "config": "gold"}, format="json").json()
    assert len(payload["validPresets"]) == 15


def test_malformed_json_is_a_400_not_a_500(operator_api):
    response = operator_api.post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400


def test_anonymous_callers_are_refused(api_client):
    assert api_client.post(URL, {"type": "preset", "config": "starter"}, format="json").status_code in (401, 403)
    assert api_client.get("/api/presets/").status_code in (401, 403)


def test_viewers_may_read_presets_but_not_change_the_pool(viewer_api):
    assert viewer_api.get("/api/presets/").status_code == 200
    assert viewer_api.post(URL, {"type": "preset", "config": "starter"}, format="json").status_code == 403


def test_token_authentication_works_for_programs(api_client, operator):
    token = Token.objects.create(user=operator)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert api_client.post(URL, {"type": "preset", "config": "starter"}, format="json").status_code == 200


def test_presets_endpoint_lists_every_preset_with_the_seed_fields(viewer_api):
    presets = viewer_api.get("/api/presets/").json()
    assert len(presets) == 15
    hybrid = next(p for p in presets if p["key"] == "hybrid-basic")
    assert hybrid["costPer1000"] == 1.06
    assert hybrid["capacity"] == {"emailsPerDay": 3000, "emailsPerMonth": 90000}
    assert hybrid["cost"] == {"monthly": 95, "setup": 0}
    assert hybrid["recommended"] is True and hybrid["servers"] == 3
    for p in presets:
        assert {"key", "name", "tier", "capacity", "servers", "cost", "costPer1000"} <= p.keys()


def test_presets_filter_by_tier_and_recommended_and_order_by_any_figure(viewer_api):
    hybrid = viewer_api.get("/api/presets/?tier=hybrid").json()
    assert [p["key"] for p in hybrid] == ["hybrid-basic", "hybrid-professional"]
    stars = viewer_api.get("/api/presets/?recommended=true").json()
    assert [p["key"] for p in stars] == ["starter", "professional", "business", "enterprise", "hybrid-basic"]
    cheapest = viewer_api.get("/api/presets/?ordering=costPer1000,-emailsPerDay").json()
    assert [p["key"] for p in cheapest[:3]] == ["high-volume-burst", "hybrid-basic", "hybrid-professional"]
    assert cheapest[-1]["key"] == "ultra-secure"
    # Ties on $1.67 are broken by the second term: the largest pure-SMTP pool first.
    assert cheapest[3]["key"] == "enterprise-ultimate"
    biggest = viewer_api.get("/api/presets/?tier=enterprise&ordering=-servers").json()
    assert [p["servers"] for p in biggest] == [25, 20, 15]


def test_presets_refuse_an_unknown_tier_naming_the_valid_ones(viewer_api):
    response = viewer_api.get("/api/presets/?tier=gold")
    assert response.status_code == 400
    body = str(response.json())
    assert "gold" in body and "starter" in body and "specialized" in body
    assert viewer_api.get("/api/presets/?recommended=maybe").status_code == 400


def test_volume_recommendation_endpoint(viewer_api):
    assert viewer_api.get("/api/presets/recommend/?emailsPerDay=2000").json()["preset"]["key"] == "professional"
    assert viewer_api.get("/api/presets/recommend/?emailsPerDay=lots").status_code == 400


def test_openapi_schema_and_docs_are_served_to_logged_in_users(operator_client, client):
    schema = operator_client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/email-config/multi-server" in schema.content
    assert operator_client.get("/api/docs/").status_code == 200
