from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings as django_settings
from django.db import connection

from servers import quota
from servers.models import Alert, HealthCheck, Server, ServerState, WarmupSchedule
from tests.support.dnsserver import dns_server  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/api/servers/"


def create(api, **fields):
    body = {"name": "Relay A", "host": "127.0.0.1", "port": 2525, "security": "none", **fields}
    return api.post(URL, body, format="json")


def raw_password(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM servers_server WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_a_server_is_created_active_and_its_password_is_never_shown(operator_api):
    response = create(operator_api, username="relay", password="pw-s3cret-1")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["state"] == "active" and body["hasPassword"] is True
    assert "password" not in body and "pw-s3cret-1" not in response.content.decode()
    assert Server.objects.get(pk=body["id"]).password == "pw-s3cret-1"
    assert "pw-s3cret-1" not in raw_password(body["id"])


def test_a_blank_password_keeps_the_stored_one_and_clear_secrets_removes_it(operator_api):
    pk = create(operator_api, password="pw-s3cret-1").json()["id"]
    operator_api.patch(f"{URL}{pk}/", {"password": "", "username": "renamed"}, format="json")
    assert Server.objects.get(pk=pk).password == "pw-s3cret-1"
    operator_api.put(f"{URL}{pk}/", {"password": "pw-s3cret-2"}, format="json")
    assert Server.objects.get(pk=pk).password == "pw-s3cret-2"
    body = operator_api.patch(f"{URL}{pk}/", {"clearSecrets": ["password"]}, format="json").json()
    assert body["hasPassword"] is False and Server.objects.get(pk=pk).password == ""


def test_a_server_without_a_host_is_unconfigured_until_it_gets_one(operator_api):
    body = operator_api.post(URL, {"name": "Empty"}, format="json").json()
    assert body["state"] == "unconfigured"
    assert operator_api.patch(f"{URL}{body['id']}/", {"host": "mx.example.net"}, format="json").json()["state"] == "active"


@pytest.mark.parametrize(
    "fields,field",
    [
        ({"host": "smtp.example.net\r\nRCPT TO:<x@y>"}, "host"),
        ({"host": "exa mple.net"}, "host"),
        ({"heloName": "mta.example.com\r\nMAIL FROM:<a@b>"}, "heloName"),
        ({"username": "relay\nAUTH PLAIN"}, "username"),
        ({"password": "pw\r\nQUIT"}, "password"),
        ({"name": "Bad\x00name"}, "name"),
        ({"region": "E\r\nU"}, "region"),
        ({"port": 70000}, "port"),
        ({"priority": 3}, "priority"),
        ({"dailyLimit": -1}, "dailyLimit"),
        ({"warmupSchedule": "no-such-schedule"}, "warmupSchedule"),
        ({"ipAddress": "999.1.1.1"}, "ipAddress"),
        ({"kind": "carrier-pigeon"}, "kind"),
    ],
)
def test_values_that_would_break_or_inject_an_smtp_command_are_refused(operator_api, fields, field):
    response = create(operator_api, **fields)
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]
    assert Server.objects.count() == 0


def test_derived_warmup_and_quota_fields(operator_api):
    schedule = WarmupSchedule.objects.get(key="default-6-day")
    with time_machine.travel(dt.datetime(2025, 5, 3, 12, tzinfo=dt.UTC), tick=False):
        pk = create(operator_api, warmupEnabled=True, warmupSchedule=schedule.key, warmupStartedOn="2025-05-01", dailyLimit=500).json()["id"]
        quota.reserve(Server.objects.get(pk=pk), 42)
        body = operator_api.get(f"{URL}{pk}/").json()
    assert body["warmupDay"] == 3 and body["inWarmup"] is True
    assert body["capToday"] == 200 and body["sentToday"] == 42
    assert body["fullCapacityOn"] == "2025-05-06"


def test_advance_warmup_raises_todays_cap(operator_api):
    pk = create(operator_api, warmupEnabled=True, warmupSchedule="default-6-day").json()["id"]
    before = operator_api.get(f"{URL}{pk}/").json()
    after = operator_api.post(f"{URL}{pk}/advance-warmup/").json()
    assert after["warmupDay"] == before["warmupDay"] + 1
    assert after["capToday"] > before["capToday"]


def test_pause_and_resume(operator_api):
    pk = create(operator_api).json()["id"]
    paused = operator_api.post(f"{URL}{pk}/pause/", {"reason": "maintenance window"}, format="json").json()
    assert (paused["state"], paused["stateReason"]) == ("paused-manual", "maintenance window")
    assert operator_api.post(f"{URL}{pk}/pause/").status_code == 400
    assert operator_api.post(f"{URL}{pk}/resume/").json()["state"] == "active"


def test_a_blocklisted_server_cannot_be_resumed_by_hand(operator_api):
    pk = create(operator_api).json()["id"]
    Server.objects.filter(pk=pk).update(state=ServerState.PAUSED_BLOCKLISTED, state_reason="listed on zen")
    response = operator_api.post(f"{URL}{pk}/resume/")
    assert response.status_code == 400
    assert "resumes on its own" in response.json()["error"]


def test_health_check_now_probes_the_relay_and_returns_the_check(operator_api, relay):
    pk = create(operator_api, host=relay.host, port=relay.port, heloName="client.mailops.test").json()["id"]
    response = operator_api.post(f"{URL}{pk}/health-check/")
    assert response.status_code == 200, response.json()
    assert response.json()["ok"] is True and response.json()["server"] == pk
    assert HealthCheck.objects.filter(server_id=pk, ok=True).count() == 1


def test_health_check_of_a_closed_port_reports_the_failed_stage(operator_api):
    pk = create(operator_api, port=9).json()["id"]
    body = operator_api.post(f"{URL}{pk}/health-check/").json()
    assert body["ok"] is False and body["stage"] == "connect"


def test_blocklist_check_now_pauses_a_listed_server(operator_api, settings, dns_server):  # noqa: F811
    settings.MAILOPS = {
        **django_settings.MAILOPS,
        "DNS_RESOLVER": "127.0.0.1",
        "DNS_RESOLVER_PORT": dns_server.port,
        "DNS_TIMEOUT_SECONDS": 0.5,
        "DNSBL_ZONES": ["zen.example.test"],
    }
    dns_server.set("2.2.0.192.zen.example.test", "A", ["127.0.0.2"])
    dns_server.set("2.2.0.192.zen.example.test", "TXT", ["listed for testing"])
    pk = create(operator_api, ipAddress="192.0.2.2").json()["id"]
    body = operator_api.post(f"{URL}{pk}/blocklist-check/").json()
    assert body["listed"] is True and body["state"] == "paused-blocklisted"
    assert body["results"][0]["zone"] == "zen.example.test" and body["results"][0]["status"] == "listed"


def test_blocklist_check_needs_an_ip(operator_api):
    pk = create(operator_api).json()["id"]
    response = operator_api.post(f"{URL}{pk}/blocklist-check/")
    assert response.status_code == 400 and "ipAddress" in response.json()["fields"]


def test_a_pool_server_cannot_be_deleted_but_one_taken_out_can(operator_api):
    pk = create(operator_api).json()["id"]
    assert operator_api.delete(f"{URL}{pk}/").status_code == 400
    operator_api.patch(f"{URL}{pk}/", {"inPool": False}, format="json")
    assert operator_api.delete(f"{URL}{pk}/").status_code == 204
    assert not Server.objects.filter(pk=pk).exists()


def test_the_list_filters_searches_orders_and_pages(operator_api):
    for n, (region, reputation) in enumerate([("EU", 90.0), ("US", 70.0), ("EU", 99.0)], start=1):
        pk = create(operator_api, name=f"Relay {n}", region=region).json()["id"]
        Server.objects.filter(pk=pk).update(reputation=reputation)
    names = lambda response: [s["name"] for s in response.json()["results"]]  # noqa: E731
    assert names(operator_api.get(URL, {"region": "EU", "ordering": "-reputation"})) == ["Relay 3", "Relay 1"]
    assert names(operator_api.get(URL, {"search": '"relay 2"'})) == ["Relay 2"]
    page = operator_api.get(URL, {"pageSize": 2, "ordering": "name"}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert operator_api.get(URL, {"state": "exploded"}).status_code == 400


def test_viewers_read_servers_but_cannot_touch_them(operator_api, viewer):
    pk = create(operator_api).json()["id"]
    viewer_api = operator_api
    viewer_api.force_authenticate(viewer)
    assert viewer_api.get(f"{URL}{pk}/").status_code == 200
    assert viewer_api.post(f"{URL}{pk}/pause/").status_code == 403
    assert viewer_api.patch(f"{URL}{pk}/", {"name": "x"}, format="json").status_code == 403


def test_alerts_are_filtered_and_acknowledged_with_who_and_when(operator_api, operator):
    Alert.objects.create(level="critical", kind="server_down", message="SMTP Server 1 is down")
    seen = Alert.objects.create(level="info", kind="server_up", message="SMTP Server 1 is up")
    assert [a["kind"] for a in operator_api.get("/api/alerts/", {"level": "critical"}).json()["results"]] == ["server_down"]
    body = operator_api.post(f"/api/alerts/{seen.pk}/acknowledge/").json()
    assert body["acknowledged"] is True and body["acknowledgedBy"] == operator.username and body["acknowledgedAt"]
    open_alerts = operator_api.get("/api/alerts/", {"acknowledged": "false"}).json()["results"]
    assert [a["kind"] for a in open_alerts] == ["server_down"]
    first_ack = body["acknowledgedAt"]
    assert operator_api.post(f"/api/alerts/{seen.pk}/acknowledge/").json()["acknowledgedAt"] == first_ack
