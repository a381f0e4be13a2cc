"""HTMX posts carry the CSRF token in a header set on <body>; without it Django refuses them."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_client(operator) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    return client


def token_from_page(client: Client) -> str:
    body = client.get(reverse("dashboard:overview")).content.decode()
    return re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", body).group(1)


def test_an_htmx_post_without_the_token_is_refused(strict_client, world):
    response = strict_client.post(
        reverse("dashboard:alert-acknowledge", args=[world.alert.pk]), headers={"HX-Request": "true"}
    )
    assert response.status_code == 403
    world.alert.refresh_from_db()
    assert world.alert.acknowledged_at is None


def test_an_htmx_post_with_a_forged_token_is_refused(strict_client, world):
    token_from_page(strict_client)  # sets the cookie
    response = strict_client.post(
        reverse("dashboard:server-pause", args=[world.servers[0].pk]),
        headers={"HX-Request": "true", "X-CSRFToken": "x" * 64},
    )
    assert response.status_code == 403


def test_an_htmx_post_with_the_pages_token_is_accepted(strict_client, world):
    token = token_from_page(strict_client)
    response = strict_client.post(
        reverse("dashboard:alert-acknowledge", args=[world.alert.pk]),
        {"compact": "1"},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 200
    world.alert.refresh_from_db()
    assert world.alert.acknowledged_at is not None


def test_the_live_preview_post_needs_the_token_too(strict_client, world):
    url = reverse("dashboard:campaign-preview")
    assert strict_client.post(url, {"subject": "x"}, headers={"HX-Request": "true"}).status_code == 403
    token = token_from_page(strict_client)
    assert (
        strict_client.post(url, {"subject": "x"}, headers={"HX-Request": "true", "X-CSRFToken": token}).status_code
        == 200
    )
