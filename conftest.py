"""Shared fixtures. Fixture modules under tests/support are registered here for every test."""

from __future__ import annotations

import os

import pytest

pytest_plugins = [
    "tests.support.dnsserver",
    "tests.support.relays",
    "tests.support.sendgrid_server",
    "tests.support.celery_worker",
]


def pytest_configure(config):
    # A service the suite needs must fail, not skip, under CI.
    if os.environ.get("CI") == "true":
        os.environ.setdefault("MAILOPS_REQUIRE_SERVICES", "1")


@pytest.fixture(autouse=True)
def _own_cache_keys(monkeypatch, request):
    """Give each test its own cache key prefix.

    The database cache is rolled back with each test, but Redis (REDIS_URL) is shared by the
    whole run and cannot be flushed without emptying the Celery queue in the same database,
    so counters such as sign-in failures would leak from one test into the next.
    """
    import hashlib

    from django.core.cache import caches

    # A digest, not the node id itself: ids carry spaces and brackets, which Django warns about.
    node = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setattr(caches["default"], "key_prefix", f"test:{node}")


@pytest.fixture(autouse=True)
def _seed_rows(request):
    """Transactional tests flush the database, seed rows included; put the presets and roles back."""
    if not {"transactional_db", "live_server"} & set(request.fixturenames):
        marker = request.node.get_closest_marker("django_db")
        if not (marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))):
            return
    request.getfixturevalue("transactional_db")
    import importlib

    from django.apps import apps

    from servers.models import Preset

    if not Preset.objects.exists():
        importlib.import_module("servers.migrations.0002_seed_presets").seed(apps, None)
        importlib.import_module("servers.migrations.0004_roles").roles(apps, None)


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
