"""Invariant 6: SMTP passwords, SendGrid API keys and API tokens never leave — not in API
responses or pages, not in logs, not in the admin's HTML, not in error pages or the error
mails to ADMINS."""

from __future__ import annotations

import base64
import io
import logging
import sys

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.test import Client, RequestFactory
from django.utils.log import AdminEmailHandler
from django.views.debug import technical_500_response
from rest_framework.authtoken.models import Token

from servers.models import Server, ServerKind
from tests.test_urls_access import PK, all_routes, objects  # noqa: F401  (objects is a fixture)

pytestmark = pytest.mark.django_db

PASSWORD = "Pw-9f3c1e7a-relay-secret"
API_KEY = "SG.k3yk3yk3yk3y.s3cr3ts3cr3ts3cr3t"
USERNAME = "relay-user"
# API tokens: the walker's program user (pk=PK, so the admin's token pages open a real one) and the operator's.
PROGRAM_TOKEN = "7f1c0ffee4b1d5ca1ab1e0ddba11c0de5ec0e7e1"
OPERATOR_TOKEN = "d1e5e1f00d5eed5a1ad0b0e5ca5cadef1a7e5a1e"


def variants(secret: str, username: str = USERNAME) -> list[str]:
    """The secret as it could appear: plain, and as SMTP AUTH PLAIN / LOGIN put it on the wire."""
    return [
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0{username}\0{secret}".encode()).decode(),
    ]


SECRETS = variants(PASSWORD) + variants(API_KEY) + [PROGRAM_TOKEN, OPERATOR_TOKEN]
TOKEN_ADMIN = "/admin/authtoken/tokenproxy/"


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def body(response) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode("utf-8", "replace")
    return response.content.decode("utf-8", "replace")


@pytest.fixture
def secret_servers(objects, operator_api, relay_factory):  # noqa: F811
    """The walker's server gets a password through the API, and a SendGrid server an API key."""
    relay = relay_factory(username=USERNAME, password=PASSWORD)
    responses = [
        operator_api.patch(
            f"/api/servers/{PK}/",
            {"host": relay.host, "port": relay.port, "username": USERNAME, "password": PASSWORD, "inPool": True},
            format="json",
        ),
        operator_api.post("/api/servers/", {"kind": "sendgrid", "name": "SendGrid Pro", "apiKey": API_KEY}, format="json"),
    ]
    for response in responses:
        assert response.status_code in (200, 201), response.json()
        assert not leaked(body(response))
    assert Server.objects.get(pk=PK).password == PASSWORD
    assert Server.objects.get(kind=ServerKind.SENDGRID, name="SendGrid Pro").api_key == API_KEY
    return relay


@pytest.fixture
def api_tokens(objects, operator, django_user_model):  # noqa: F811
    program = django_user_model.objects.create(pk=PK, username="crm-sync")
    Token.objects.create(user=program, key=PROGRAM_TOKEN)
    Token.objects.create(user=operator, key=OPERATOR_TOKEN)
    return program


def test_no_page_or_api_response_contains_a_secret(secret_servers, api_tokens, operator, admin_user):
    operator_client, admin_client = Client(), Client()
    operator_client.force_login(operator)
    admin_client.force_login(admin_user)
    checked = 0
    for route in all_routes():
        if route.key in ("logout", "admin-login"):
            continue
        client = admin_client if route.key == "admin" else operator_client
        response = client.get(route.url + route.query)
        assert response.status_code < 500, route
        assert not leaked(body(response)), f"{route.url} shows a secret"
        checked += 1
    assert checked > 50


def test_the_admin_change_form_never_renders_the_stored_secrets(secret_servers, admin_client):
    sendgrid = Server.objects.get(kind=ServerKind.SENDGRID, name="SendGrid Pro")
    for pk in (PK, sendgrid.pk):
        html = admin_client.get(f"/admin/servers/server/{pk}/change/").content.decode()
        assert 'name="password"' in html and 'name="api_key"' in html
        assert not leaked(html)
    assert not leaked(admin_client.get("/admin/servers/server/").content.decode())


def test_the_token_admin_shows_only_the_start_of_each_key(api_tokens, admin_client):
    pages = [
        TOKEN_ADMIN,
        f"{TOKEN_ADMIN}?q=crm",
        f"{TOKEN_ADMIN}{PK}/change/",
        f"{TOKEN_ADMIN}{PK}/history/",
        f"{TOKEN_ADMIN}{PK}/delete/",
        f"{TOKEN_ADMIN}add/",
        "/admin/authtoken/",
        "/admin/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert not leaked(body(response)), f"{url} shows a token"
    listing = admin_client.get(TOKEN_ADMIN).content.decode()
    assert f"{PROGRAM_TOKEN[:4]}…" in listing and f"{OPERATOR_TOKEN[:4]}…" in listing
    change = admin_client.get(f"{TOKEN_ADMIN}{PK}/change/").content.decode()
    assert "crm-sync" in change and f"{PROGRAM_TOKEN[:4]}…" in change
    assert 'name="key"' not in change and 'name="user"' not in change  # read-only: a token is never edited


def test_the_token_admin_searches_by_user_only(api_tokens, admin_client):
    # A key search would let anyone with the admin guess keys a few characters at a time.
    by_key = admin_client.get(TOKEN_ADMIN, {"q": PROGRAM_TOKEN[:12]})
    assert by_key.context["cl"].result_count == 0
    by_user = admin_client.get(TOKEN_ADMIN, {"q": "crm-sync"})
    assert by_user.context["cl"].result_count == 1


def test_a_token_added_in_the_admin_is_shown_once_and_then_never_again(admin_client, viewer):
    added = admin_client.post(f"{TOKEN_ADMIN}add/", {"user": viewer.pk, "_continue": "1"})
    token = Token.objects.get(user=viewer)
    assert added.status_code == 200 and token.key in added.content.decode()
    assert "no-store" in added["Cache-Control"]
    assert not any(token.key in cookie.value for cookie in added.cookies.values())
    pages = [TOKEN_ADMIN, f"{TOKEN_ADMIN}{viewer.pk}/change/", f"{TOKEN_ADMIN}{viewer.pk}/history/", "/admin/"]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert token.key not in html, url
    assert f"{token.key[:4]}…" in admin_client.get(f"{TOKEN_ADMIN}{viewer.pk}/history/").content.decode()
    deleted = admin_client.post(f"{TOKEN_ADMIN}{viewer.pk}/delete/", {"post": "yes"}, follow=True)
    assert deleted.status_code == 200 and not Token.objects.filter(user=viewer).exists()
    assert token.key not in deleted.content.decode()
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.count() == 2
    assert not [e for e in LogEntry.objects.all() if token.key in e.object_repr or token.key in e.change_message]


def test_no_log_line_written_while_using_the_secrets_contains_one(secret_servers, operator_api, caplog, settings):
    caplog.set_level(logging.DEBUG)
    ok = operator_api.post(f"/api/servers/{PK}/health-check/").json()
    assert ok["ok"] is True, ok
    sent = operator_api.post("/api/send/", {"to": "ana@example.com", "subject": "Hi", "text": "Hello"}, format="json")
    assert sent.status_code == 200, sent.json()
    secret_servers.set_auth(USERNAME, "a-different-password")
    failed = operator_api.post(f"/api/servers/{PK}/health-check/").json()
    assert failed["ok"] is False and failed["stage"] == "auth"
    operator_api.patch(f"/api/servers/{PK}/", {"password": PASSWORD + "-rotated"}, format="json")
    assert caplog.records, "nothing was logged, so this test proves nothing"
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not leaked(text)


def test_the_console_log_handler_redacts_credentials_that_reach_it():
    handler = next(
        h for h in logging.getLogger().handlers if any(type(f).__name__ == "RedactSecretsFilter" for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        log = logging.getLogger("mailops.test")
        log.warning("relay refused: password=%s", PASSWORD)
        log.warning("calling SendGrid with Authorization: Bearer %s", API_KEY)
        log.warning('payload {"api_key": "%s"}', API_KEY)
    finally:
        handler.setStream(previous)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all("[redacted]" in line for line in lines)
    assert not leaked("\n".join(lines))


def _raise_with_secrets_in_scope(api_key: str) -> None:
    password = PASSWORD  # noqa: F841 — a local the error report must hide
    changes = {"name": "Relay A", "password": PASSWORD}  # noqa: F841
    raise RuntimeError("boom")


def test_error_pages_and_the_error_mail_to_admins_hide_secrets(settings):
    settings.ADMINS = ["admin@example.com"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    request = RequestFactory().post("/servers/1/edit/", {"name": "Relay A", "password": PASSWORD, "apiKey": API_KEY})
    try:
        _raise_with_secrets_in_scope(API_KEY)
    except RuntimeError:
        exc_info = sys.exc_info()

    settings.DEBUG = True
    page = technical_500_response(request, *exc_info).content.decode()
    assert "Relay A" in page and "boom" in page
    assert not leaked(page)

    settings.DEBUG = False
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/servers/1/edit/",), exc_info)
    record.request = request
    AdminEmailHandler(include_html=True).emit(record)
    (sent,) = mail.outbox
    assert "Relay A" in sent.body
    assert not leaked(sent.body)
    assert not leaked(sent.alternatives[0].content)


def test_the_filter_is_the_configured_one():
    assert django_settings.DEFAULT_EXCEPTION_REPORTER_FILTER == "mailops.error_reports.SecretsExceptionReporterFilter"
