"""Shared fixtures. Fixture modules under tests/support are registered here for every test."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.support.dnsserver",
    "tests.support.relays",
    "tests.support.sendgrid_server",
]


def pytest_configure(config):
    # A service the suite needs must fail, not skip, under CI.
    if os.environ.get("CI") == "true":
        os.environ.setdefault("MAILOPS_REQUIRE_SERVICES", "1")


@pytest.fixture
def operator(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="olivia", password="operator-pass-123")
    user.groups.add(Group.objects.get_or_create(name="operators")[0])
    return user


@pytest.fixture
def viewer(django_user_model):
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username="victor", password="viewer-pass-123")
    user.groups.add(Group.objects.get_or_create(name="viewers")[0])
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def operator_api(api_client, operator):
    api_client.force_authenticate(operator)
    return api_client


@pytest.fixture
def viewer_api(api_client, viewer):
    api_client.force_authenticate(viewer)
    return api_client


@pytest.fixture
def smtp_env(monkeypatch):
    """Point SMTP slots at given relay ports through the seed's SMTP_HOST_n variables."""

    def configure(ports: list[int], *, security: str = "none") -> None:
        for n, port in enumerate(ports, start=1):
            monkeypatch.setenv(f"SMTP_HOST_{n}", "127.0.0.1")
            monkeypatch.setenv(f"SMTP_PORT_{n}", str(port))
            monkeypatch.setenv(f"SMTP_SECURITY_{n}", security)
            monkeypatch.setenv(f"SMTP_IP_{n}", f"127.0.0.{10 + n}")

    return configure
