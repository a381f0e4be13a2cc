from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
START = dt.datetime(2025, 5, 1, 9, 0, tzinfo=dt.UTC)


def sign_in(client: Client, username: str, password: str, address: str = "198.51.100.7"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_five_failures_lock_the_account_from_that_address_even_for_the_right_password(client, operator):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            assert sign_in(client, "olivia", "wrong").status_code == 200
        locked = sign_in(client, "olivia", "operator-pass-123")
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == 15 * 60
    assert "Too many failed sign-in attempts. Try again in 15 minutes" in locked.content.decode()
    assert not locked.wsgi_request.user.is_authenticated


def test_the_lock_lifts_when_the_window_ends(client, operator):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            sign_in(client, "olivia", "wrong")
    with time_machine.travel(START + dt.timedelta(minutes=15, seconds=1), tick=False):
        response = sign_in(client, "olivia", "operator-pass-123")
    assert response.status_code == 302 and response.wsgi_request.user == operator


def test_the_lock_is_per_username_and_address(client, operator, viewer):
    with time_machine.travel(START, tick=False):
        for _ in range(5):
            sign_in(client, "olivia", "wrong")
        assert sign_in(Client(), "olivia", "operator-pass-123", address="203.0.113.50").status_code == 302
        assert sign_in(Client(), "victor", "viewer-pass-123").status_code == 302


def test_a_successful_sign_in_forgets_earlier_failures(client, operator):
    with time_machine.travel(START, tick=False):
        for _ in range(4):
            sign_in(client, "olivia", "wrong")
        assert sign_in(client, "olivia", "operator-pass-123").status_code == 302
        other = Client()
        for _ in range(4):
            assert sign_in(other, "olivia", "wrong").status_code == 200
        assert sign_in(other, "olivia", "operator-pass-123").status_code == 302


def test_an_address_trying_many_usernames_is_stopped_too(client, settings, operator):
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    with time_machine.travel(START, tick=False):
        for name in ("ann", "ben", "cid"):
            sign_in(client, name, "guess")
        assert sign_in(client, "olivia", "operator-pass-123").status_code == 429


def test_the_api_is_rate_limited_per_token(settings, operator, viewer):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "3/minute"}}
    busy, calm = APIClient(), APIClient()
    busy.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=operator).key}")
    calm.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=viewer).key}")
    with time_machine.travel(START, tick=False):
        assert [busy.get("/api/presets/").status_code for _ in range(3)] == [200, 200, 200]
        refused = busy.get("/api/presets/")
        assert calm.get("/api/presets/").status_code == 200
    assert refused.status_code == 429
    assert refused.json()["success"] is False and "throttled" in refused.json()["error"]
    assert int(refused["Retry-After"]) > 0
    with time_machine.travel(START + dt.timedelta(minutes=1, seconds=1), tick=False):
        assert busy.get("/api/presets/").status_code == 200


def test_keys_that_outlive_their_window_neither_lock_nor_count(operator):
    # Redis expires keys on its own clock; the window, measured in our time, must decide.
    from mailops import throttling

    t = 1_800_000_000.0
    for _ in range(5):
        throttling.record_failure("olivia", "198.51.100.9", now=t)
    assert throttling.retry_after("olivia", "198.51.100.9", now=t + 60) == 15 * 60 - 60
    assert throttling.retry_after("olivia", "198.51.100.9", now=t + 15 * 60 + 1) == 0
    throttling.record_failure("olivia", "198.51.100.9", now=t + 15 * 60 + 1)
    for _ in range(3):
        throttling.record_failure("olivia", "198.51.100.9", now=t + 15 * 60 + 2)
    assert throttling.retry_after("olivia", "198.51.100.9", now=t + 15 * 60 + 3) == 0


def test_every_configured_rate_belongs_to_a_throttle_in_use():
    # A rate no throttle reads looks like protection and is none (a "login" rate once sat here unused).
    from django.conf import settings
    from django.urls import resolve
    from django.utils.module_loading import import_string

    from tests.test_urls_access import all_routes

    classes = {import_string(path) for path in settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]}
    for route in all_routes():
        view = resolve(route.url).func
        classes.update(getattr(getattr(view, "cls", None) or getattr(view, "view_class", None), "throttle_classes", []))
    scopes = {getattr(cls, "scope", None) for cls in classes}
    assert set(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]) <= scopes
