from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import Campaign, ImportJob, Message, Prospect, ProspectList
from servers.models import Server, ServerKind, ServerState

pytestmark = pytest.mark.django_db

CSV = (
    "email,name,company,country,plan\r\n"
    "ana@example.com,Ana,Acme,ES,gold\r\n"
    "bob@example.org,Bob,Initech,US,silver\r\n"
    "not-an-address,Nobody,,,\r\n"
    "carla@example.net,Carla,Acme,ES,=1+1\r\n"
)


@pytest.fixture(autouse=True)
def eager_tasks(settings, tmp_path):
    """Tasks run inline (the import, the dispatch kick) and uploads land in a temporary MEDIA_ROOT."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.MEDIA_ROOT = tmp_path / "media"


def csv_file(text: str = CSV, name: str = "prospects.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def read_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def imported_list(operator_api, django_capture_on_commit_callbacks):
    list_id = operator_api.post("/api/lists/", {"name": "Fair 2025"}, format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_api.post(f"/api/lists/{list_id}/upload/", {"file": csv_file()}, format="multipart")
    assert response.status_code == 202, response.json()
    return list_id, response.json()["id"]


def test_an_upload_returns_a_job_that_imports_the_file(operator_api, imported_list):
    list_id, job_id = imported_list
    job = operator_api.get(f"/api/imports/{job_id}/").json()
    assert job["status"] == "done" and job["progress"] == 100.0
    assert (job["rowsImported"], job["rowsInvalid"]) == (3, 1)
    assert operator_api.get(f"/api/lists/{list_id}/").json()["prospectCount"] == 3


def test_import_errors_are_listed_and_downloadable(operator_api, imported_list):
    _, job_id = imported_list
    errors = operator_api.get(f"/api/imports/{job_id}/errors/").json()
    assert errors["count"] == 1 and errors["results"][0]["line"] == 4
    rows = read_csv(operator_api.get(f"/api/imports/{job_id}/errors.csv"))
    assert rows[0] == ["line", "reason", "raw"] and rows[1][0] == "4"


def test_import_errors_are_searched_and_ordered(operator_api, django_capture_on_commit_callbacks):
    list_id = operator_api.post("/api/lists/", {"name": "Messy"}, format="json").json()["id"]
    text = "email,name\nnot-an-address,A\nana@example.com,Ana\n,Blank\nalso bad@,C\n"
    with django_capture_on_commit_callbacks(execute=True):
        job_id = operator_api.post(f"/api/lists/{list_id}/upload/", {"file": csv_file(text)}, format="multipart").json()["id"]
    url = f"/api/imports/{job_id}/errors/"

    assert [e["line"] for e in operator_api.get(url).json()["results"]] == [2, 4, 5]
    assert [e["line"] for e in operator_api.get(url, {"ordering": "-line"}).json()["results"]] == [5, 4, 2]
    assert [e["line"] for e in operator_api.get(url, {"search": "also bad"}).json()["results"]] == [5]
    assert operator_api.get(url, {"pageSize": 1}).json()["count"] == 3


def test_prospects_are_paginated_and_searchable(operator_api, imported_list):
    list_id, _ = imported_list
    url = f"/api/lists/{list_id}/prospects/"
    page = operator_api.get(url, {"pageSize": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert [p["email"] for p in operator_api.get(url, {"search": "initech"}).json()["results"]] == ["bob@example.org"]
    assert [p["email"] for p in operator_api.get(url, {"country": "ES", "ordering": "-email"}).json()["results"]] == [
        "carla@example.net",
        "ana@example.com",
    ]
    assert operator_api.get("/api/lists/999999/prospects/").status_code == 404


def test_a_list_exports_as_formula_safe_csv(operator_api, imported_list):
    list_id, _ = imported_list
    response = operator_api.get(f"/api/lists/{list_id}/export/")
    assert response["Content-Disposition"].startswith("attachment")
    rows = read_csv(response)
    assert rows[0] == ["email", "name", "company", "country", "plan"]
    assert ["carla@example.net", "Carla", "Acme", "ES", "'=1+1"] in rows


def test_an_upload_over_the_limit_is_refused_with_413_before_any_job(operator_api, settings):
    settings.IMPORT_MAX_BYTES = 100
    list_id = operator_api.post("/api/lists/", {"name": "Big"}, format="json").json()["id"]
    response = operator_api.post(f"/api/lists/{list_id}/upload/", {"file": csv_file("email\r\n" + "a@example.com\r\n" * 50)}, format="multipart")
    assert response.status_code == 413
    assert "limit" in response.json()["error"] and "split" in response.json()["error"]
    assert not ImportJob.objects.exists()


def test_an_upload_without_a_file_names_the_field(operator_api):
    list_id = operator_api.post("/api/lists/", {"name": "Empty"}, format="json").json()["id"]
    response = operator_api.post(f"/api/lists/{list_id}/upload/", {}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]


def test_a_list_used_by_a_campaign_cannot_be_deleted(operator_api):
    prospect_list = ProspectList.objects.create(name="Used")
    Campaign.objects.create(name="C", prospect_list=prospect_list, from_email="a@example.com", subject="Hi")
    response = operator_api.delete(f"/api/lists/{prospect_list.pk}/")
    assert response.status_code == 409 and response.json()["success"] is False


CAMPAIGN = {"name": "May", "fromEmail": "news@example.com", "fromName": "News", "subject": "Hello {{ name }}", "htmlBody": "<p>Hi {{ name }}</p>", "textBody": "Hi {{ name }}"}


@pytest.fixture
def prospect_list():
    prospect_list = ProspectList.objects.create(name="Three", prospect_count=3)
    Prospect.objects.bulk_create(Prospect(prospect_list=prospect_list, email=f"p{n}@example.com", name=f"P{n}") for n in range(3))
    return prospect_list


def test_a_campaign_goes_through_its_lifecycle(operator_api, prospect_list):
    created = operator_api.post("/api/campaigns/", {**CAMPAIGN, "list": prospect_list.pk}, format="json")
    assert created.status_code == 201, created.json()
    url = f"/api/campaigns/{created.json()['id']}/"
    assert created.json()["status"] == "draft" and created.json()["listName"] == "Three"

    started = operator_api.post(url + "start/").json()
    assert started["status"] == "running" and started["total"] == 3
    stats = operator_api.get(url + "stats/").json()
    assert stats["queued"] == 3 and stats["remaining"] == 3 and stats["perServer"] == []

    assert operator_api.patch(url, {"subject": "Changed"}, format="json").status_code == 400
    assert operator_api.post(url + "pause/").json()["status"] == "paused"
    assert operator_api.patch(url, {"subject": "Changed {{ name }}"}, format="json").json()["subject"] == "Changed {{ name }}"
    assert operator_api.post(url + "resume/").json()["status"] == "running"
    assert operator_api.post(url + "cancel/").json()["status"] == "cancelled"
    assert set(Message.objects.values_list("status", flat=True)) == {"cancelled"}
    assert operator_api.post(url + "start/").status_code == 400
    assert operator_api.delete(url).status_code == 400


def test_only_a_draft_can_be_deleted(operator_api, prospect_list):
    pk = operator_api.post("/api/campaigns/", {**CAMPAIGN, "list": prospect_list.pk}, format="json").json()["id"]
    assert operator_api.delete(f"/api/campaigns/{pk}/").status_code == 204


@pytest.mark.parametrize(
    "changes,field",
    [
        ({"subject": "Hi\r\nBcc: victim@example.com"}, "subject"),
        ({"fromName": "News\nBcc: x@example.com"}, "fromName"),
        ({"fromEmail": "not an address"}, "fromEmail"),
        ({"list": 999999}, "list"),
        ({"dailyMax": 0}, "dailyMax"),
        ({"subject": ""}, "subject"),
        ({"replyTo": "x@example.com\r\nBcc: y@example.com"}, "replyTo"),
    ],
)
def test_bad_campaigns_are_refused_with_the_field_named(operator_api, prospect_list, changes, field):
    response = operator_api.post("/api/campaigns/", {**CAMPAIGN, "list": prospect_list.pk, **changes}, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["fields"]


def test_test_send_goes_out_through_the_pool(operator_api, prospect_list, relay):
    Server.objects.create(kind=ServerKind.SMTP, slot=1, name="Relay", host=relay.host, port=relay.port, security="none", state=ServerState.ACTIVE, warmup_enabled=False)
    pk = operator_api.post("/api/campaigns/", {**CAMPAIGN, "list": prospect_list.pk}, format="json").json()["id"]
    response = operator_api.post(f"/api/campaigns/{pk}/test-send/", {"to": "olivia@example.com"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["success"] is True and response.json()["server"] == "Relay"
    assert len(relay.messages) == 1


def test_campaigns_filter_by_status(operator_api, prospect_list):
    Campaign.objects.create(name="Draft", prospect_list=prospect_list, from_email="a@example.com", subject="Hi")
    Campaign.objects.create(name="Done", prospect_list=prospect_list, from_email="a@example.com", subject="Hi", status="done")
    assert [c["name"] for c in operator_api.get("/api/campaigns/", {"status": "done"}).json()["results"]] == ["Done"]


def test_an_upload_whose_length_is_over_the_limit_is_refused_before_it_is_read(operator_api, settings, monkeypatch):
    from rest_framework.parsers import MultiPartParser

    def never(*args, **kwargs):
        raise AssertionError("the body was parsed")

    monkeypatch.setattr(MultiPartParser, "parse", never)
    settings.IMPORT_MAX_BYTES = 1000
    list_id = operator_api.post("/api/lists/", {"name": "Big"}, format="json").json()["id"]
    big = csv_file("email\r\n" + "someone@example.com\r\n" * 5000)
    response = operator_api.post(f"/api/lists/{list_id}/upload/", {"file": big}, format="multipart")
    assert response.status_code == 413
    assert "split it" in response.json()["error"]
