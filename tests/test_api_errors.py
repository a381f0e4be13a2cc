"""One error body everywhere, and inputs that once answered 500 (found by schemathesis)."""

from __future__ import annotations

import pytest

from servers.models import Alert

pytestmark = pytest.mark.django_db


def assert_error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    return body


def test_bad_input_names_each_field(operator_api):
    body = assert_error(operator_api.post("/api/servers/", {"port": 0, "dailyLimit": "many"}, format="json"), 400)
    assert set(body["fields"]) == {"port", "dailyLimit"}
    assert body["error"].startswith(("port: ", "dailyLimit: "))


def test_nested_field_errors_are_dotted(operator_api):
    body = assert_error(operator_api.post("/api/servers/", {"clearSecrets": ["password", "colour"]}, format="json"), 400)
    assert list(body["fields"]) == ["clearSecrets.1"]


def test_malformed_json_unknown_objects_and_wrong_methods_share_the_body(operator_api):
    assert "JSON" in assert_error(operator_api.post("/api/lists/", "{nope", content_type="application/json"), 400)["error"]
    assert_error(operator_api.get("/api/servers/123456/"), 404)
    assert_error(operator_api.delete("/api/statistics/"), 405)
    assert_error(operator_api.get("/api/servers/", {"page": 99}), 404)


def test_form_bodies_are_refused_with_415(operator_api):
    assert_error(operator_api.post("/api/lists/", {"name": "x"}), 415)


def test_a_huge_id_filter_is_a_400_not_a_500(operator_api):
    body = assert_error(operator_api.get("/api/campaigns/", {"list": "-2.4562695126741386e+76"}), 400)
    assert "list" in body["fields"]
    assert_error(operator_api.get("/api/alerts/", {"server": str(2**70)}), 400)


def test_a_time_offset_postgresql_cannot_store_is_converted_to_utc(operator_api):
    Alert.objects.create(level="info", kind="k", message="m")
    assert operator_api.get("/api/alerts/", {"since": "2000-01-01T00:00:00-18:05"}).json()["count"] == 1
    assert_error(operator_api.get("/api/alerts/", {"since": "0001-01-01T00:00:00+18:00"}), 400)


def test_search_text_with_a_nul_character_is_a_400(operator_api):
    assert "search" in assert_error(operator_api.get("/api/suppressions/", {"search": "a\x00b"}), 400)["fields"]
