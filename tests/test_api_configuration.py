from __future__ import annotations

import pytest

from servers import configuration
from servers.models import Preset, Quota, Server, ServerKind

pytestmark = pytest.mark.django_db
URL = "/api/configuration/"


@pytest.fixture
def professional(smtp_env):
    smtp_env([2601, 2602, 2603, 2604, 2605])
    return configuration.load_preset("professional")


def test_it_shows_the_active_configuration_in_camel_case(viewer_api, professional):
    body = viewer_api.get(URL).json()
    assert body["key"] == "professional"
    assert body["capacity"] == {"emailsPerDay": 2500, "emailsPerMonth": 75000}
    assert body["cost"] == {"monthly": 125, "setup": 50}
    assert body["rotationStrategy"] == "round-robin"
    assert body["healthCheckIntervalSeconds"] == 300
    assert body["warmupSchedule"] == "default-6-day"


def test_without_an_active_configuration_it_says_how_to_make_one(viewer_api):
    response = viewer_api.get(URL)
    assert response.status_code == 400
    assert "load a preset first" in response.json()["error"]


def test_put_changes_the_runtime_settings(operator_api, professional):
    body = {
        "rotationStrategy": "least-used",
        "healthCheckIntervalSeconds": 120,
        "healthFailuresToDown": 3,
        "blocklistIntervalSeconds": 1800,
        "routingRules": {"es": "eu", ".COM": "US"},
        "strictRouting": True,
        "minDelaySeconds": 1.5,
    }
    response = operator_api.put(URL, body, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["routingRules"] == {".es": "EU", ".com": "US"}
    professional.refresh_from_db()
    assert professional.rotation_strategy == "least-used"
    assert (professional.health_check_interval_seconds, professional.health_failures_to_down) == (120, 3)
    assert professional.blocklist_interval_seconds == 1800 and professional.strict_routing is True
    assert set(Server.objects.filter(kind=ServerKind.SMTP, in_pool=True).values_list("min_delay_seconds", flat=True)) == {1.5}


def test_fields_left_out_keep_their_value(operator_api, professional):
    operator_api.put(URL, {"healthFailuresToDown": 4}, format="json")
    professional.refresh_from_db()
    assert professional.health_failures_to_down == 4
    assert professional.health_check_interval_seconds == 300


def test_turning_warmup_off_lifts_todays_caps_at_once(operator_api, professional):
    server = Server.objects.get(kind=ServerKind.SMTP, slot=1)
    assert Quota.objects.get(server=server).cap == 50
    operator_api.put(URL, {"warmupEnabled": False}, format="json")
    assert Quota.objects.get(server=server).cap == 500
    assert operator_api.get(f"/api/servers/{server.pk}/").json()["capToday"] == 500


@pytest.mark.parametrize(
    "body,field",
    [
        ({"rotationStrategy": "fastest"}, "rotationStrategy"),
        ({"healthCheckIntervalSeconds": 1}, "healthCheckIntervalSeconds"),
        ({"healthFailuresToDown": 0}, "healthFailuresToDown"),
        ({"blocklistIntervalSeconds": 10**9}, "blocklistIntervalSeconds"),
        ({"routingRules": {".es": ""}}, "routingRules"),
        ({"routingRules": {"bad suffix": "EU"}}, "routingRules"),
        ({"routingRules": {".es": "EU\r\nX-Injected: 1"}}, "routingRules"),
        ({"routingRules": ["EU"]}, "routingRules"),
        ({"minDelaySeconds": -1}, "minDelaySeconds"),
        ({"strictRouting": "maybe"}, "strictRouting"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(operator_api, professional, body, field):
    response = operator_api.put(URL, body, format="json")
    assert response.status_code == 400
    assert any(name.startswith(field) for name in response.json()["fields"])


def test_viewers_cannot_change_it(viewer_api, professional):
    assert viewer_api.put(URL, {"healthFailuresToDown": 4}, format="json").status_code == 403


def test_the_active_configuration_can_be_saved_as_a_preset(operator_api, professional):
    response = operator_api.post(URL + "save-as-preset/", {"key": "my-pool", "name": "My pool"}, format="json")
    assert response.status_code == 201
    assert response.json()["key"] == "my-pool"
    assert response.json()["capacity"]["emailsPerDay"] == 2500
    assert Preset.objects.filter(key="my-pool", is_builtin=False).exists()
    again = operator_api.post(URL + "save-as-preset/", {"key": "my-pool"}, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["error"]
