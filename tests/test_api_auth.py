from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def createtoken(*args: str) -> str:
    out = io.StringIO()
    call_command("createtoken", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def as_token(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def test_a_viewer_token_reads_but_cannot_change_anything():
    key = createtoken("reporting-bot", "--role", "viewer")
    user = get_user_model().objects.get(username="reporting-bot")
    assert not user.has_usable_password()
    client = as_token(key)
    assert client.get("/api/servers/").status_code == 200
    assert client.post("/api/lists/", {"name": "x"}, format="json").status_code == 403


def test_an_operator_token_changes_things():
    client = as_token(createtoken("crm-sync", "--role", "operator"))
    assert client.post("/api/lists/", {"name": "From the CRM"}, format="json").status_code == 201


def test_a_second_token_needs_rotate_and_the_old_one_stops_working():
    old = createtoken("crm-sync", "--role", "operator")
    with pytest.raises(CommandError, match="--rotate"):
        createtoken("crm-sync")
    new = createtoken("crm-sync", "--rotate")
    assert new != old
    assert as_token(old).get("/api/servers/").status_code == 401
    assert as_token(new).get("/api/servers/").status_code == 200


def test_a_role_change_replaces_the_other_role(operator):
    createtoken(operator.username, "--role", "viewer")
    assert list(operator.groups.values_list("name", flat=True)) == ["viewers"]


def test_an_unknown_user_needs_a_role():
    with pytest.raises(CommandError, match="--role"):
        createtoken("nobody")


def test_anonymous_api_calls_get_401_with_a_token_challenge(api_client):
    response = api_client.get("/api/servers/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token'
    assert response.json() == {"success": False, "error": "Authentication credentials were not provided."}


def test_tokens_can_be_created_in_the_admin(admin_client):
    assert admin_client.get("/admin/authtoken/tokenproxy/add/").status_code == 200


def test_session_writes_need_the_csrf_token(operator):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.get("/api/servers/").status_code == 200
    refused = client.post("/api/lists/", {"name": "x"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]

