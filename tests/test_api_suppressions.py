from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import Suppression
from campaigns.suppression import suppress

pytestmark = pytest.mark.django_db
URL = "/api/suppressions/"


def test_an_address_is_added_once_lower_cased(operator_api):
    first = operator_api.post(URL, {"email": "Ana@Example.com", "source": "phone call"}, format="json")
    assert first.status_code == 201
    assert first.json()["email"] == "ana@example.com" and first.json()["reason"] == "manual"
    again = operator_api.post(URL, {"email": "ana@example.com", "reason": "complaint"}, format="json")
    assert again.status_code == 200 and again.json()["reason"] == "manual"
    assert Suppression.objects.count() == 1


def test_an_invalid_address_or_reason_is_refused(operator_api):
    assert "email" in operator_api.post(URL, {"email": "nope"}, format="json").json()["fields"]
    assert "reason" in operator_api.post(URL, {"email": "a@example.com", "reason": "bored"}, format="json").json()["fields"]


def test_the_list_searches_filters_and_orders(operator_api):
    suppress("ana@example.com", reason="hard_bounce", source="dsn")
    suppress("bob@example.com", reason="unsubscribe", source="one-click")
    suppress("carla@example.org", reason="hard_bounce", source="dsn")
    emails = lambda params: [s["email"] for s in operator_api.get(URL, params).json()["results"]]  # noqa: E731
    assert emails({"reason": "hard_bounce", "ordering": "email"}) == ["ana@example.com", "carla@example.org"]
    assert emails({"search": "example.org"}) == ["carla@example.org"]
    assert emails({"email": "BOB@example.com"}) == ["bob@example.com"]


def test_removal_by_id_and_by_address(operator_api):
    suppress("ana@example.com", reason="manual")
    suppress("bob@example.com", reason="manual")
    pk = Suppression.objects.get(email="ana@example.com").pk
    assert operator_api.delete(f"{URL}{pk}/").status_code == 204
    assert operator_api.delete(f"{URL}by-email/Bob@Example.com/").status_code == 204
    assert operator_api.delete(f"{URL}by-email/bob@example.com/").status_code == 404
    assert not Suppression.objects.exists()


def test_a_csv_is_imported_with_per_row_reasons_and_errors(operator_api):
    body = "email,reason\r\nana@example.com,complaint\r\nbob@example.com,\r\nbroken,\r\ncarla@example.com,bored\r\n"
    upload = SimpleUploadedFile("s.csv", body.encode(), content_type="text/csv")
    response = operator_api.post(f"{URL}import/", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.json()
    result = response.json()
    assert (result["added"], result["already"]) == (2, 0)
    assert sorted(e["line"] for e in result["errors"]) == [4, 5]
    assert dict(Suppression.objects.values_list("email", "reason")) == {"ana@example.com": "complaint", "bob@example.com": "manual"}


def test_a_file_that_is_not_a_csv_is_refused_with_a_reason(operator_api):
    upload = SimpleUploadedFile("s.csv", b"name\r\nAna\r\n", content_type="text/csv")
    response = operator_api.post(f"{URL}import/", {"file": upload}, format="multipart")
    assert response.status_code == 400 and "file" in response.json()["fields"]


def test_the_list_exports_as_csv(operator_api):
    suppress("ana@example.com", reason="hard_bounce", source="=cmd|' /C calc'!A0")
    response = operator_api.get(f"{URL}export/")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0] == ["email", "reason", "source", "created_at"]
    assert rows[1][:3] == ["ana@example.com", "hard_bounce", "'=cmd|' /C calc'!A0"]


def test_viewers_cannot_change_the_list(viewer_api):
    assert viewer_api.get(URL).status_code == 200
    assert viewer_api.post(URL, {"email": "a@example.com"}, format="json").status_code == 403
