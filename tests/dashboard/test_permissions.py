"""Viewers read everything and change nothing: the controls are not rendered, and a crafted
POST is refused with 403 by the view itself."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.models import Campaign, Suppression
from servers.models import Configuration, Server, ServerState

pytestmark = pytest.mark.django_db


def operator_posts(world) -> list[tuple[str, dict]]:
    server = world.servers[0]
    campaign = world.campaign
    return [
        (reverse("dashboard:alert-acknowledge", args=[world.alert.pk]), {}),
        (reverse("dashboard:preset-plan"), {"kind": "preset", "preset": "business"}),
        (reverse("dashboard:preset-apply"), {"kind": "preset", "preset": "business"}),
        (reverse("dashboard:rotation"), {"strategy": "random"}),
        (
            reverse("dashboard:server-edit", args=[server.pk]),
            {
                "name": "hijacked",
                "host": "127.0.0.1",
                "port": "25",
                "security": "none",
                "priority": "1",
                "daily_limit": "9999",
                "min_delay_seconds": "0",
            },
        ),
        (reverse("dashboard:server-pause", args=[server.pk]), {}),
        (reverse("dashboard:server-resume", args=[server.pk]), {}),
        (reverse("dashboard:server-advance", args=[server.pk]), {}),
        (reverse("dashboard:server-check", args=[server.pk]), {}),
        (reverse("dashboard:prospect-upload"), {"new_list_name": "x"}),
        (reverse("dashboard:campaign-create"), {"name": "x"}),
        (reverse("dashboard:campaign-update", args=[campaign.pk]), {"name": "renamed"}),
        (reverse("dashboard:campaign-test", args=[campaign.pk]), {"to": "a@example.com"}),
        *[
            (reverse("dashboard:campaign-action", args=[campaign.pk, a]), {})
            for a in ("start", "pause", "resume", "cancel")
        ],
        (reverse("dashboard:suppression-add"), {"email": "x@example.com", "reason": "manual"}),
        (reverse("dashboard:suppression-remove"), {"email": "gone@example.org"}),
    ]


def test_a_viewer_cannot_trigger_any_operator_action(viewer_client, world):
    for url, data in operator_posts(world):
        for headers in ({}, {"HX-Request": "true"}):
            assert viewer_client.post(url, data, headers=headers).status_code == 403, url
    world.alert.refresh_from_db()
    server = Server.objects.get(pk=world.servers[0].pk)
    assert world.alert.acknowledged_at is None
    assert (server.name, server.state, server.warmup_manual_advance, server.last_health_check_at) == (
        "SMTP Server 1",
        ServerState.ACTIVE,
        0,
        None,
    )
    assert Configuration.objects.get(is_active=True).preset.key == "professional"
    assert Configuration.objects.get(is_active=True).rotation_strategy == "round-robin"
    assert Campaign.objects.get().status == Campaign.Status.DRAFT
    assert list(Suppression.objects.values_list("email", flat=True)) == ["gone@example.org"]


def test_a_viewer_cannot_open_the_server_edit_form(viewer_client, world):
    assert viewer_client.get(reverse("dashboard:server-form", args=[world.servers[0].pk])).status_code == 403


def test_operator_actions_only_accept_post(operator_client, world):
    for url, _data in operator_posts(world):
        assert operator_client.get(url).status_code == 405, url


CONTROLS = {
    "overview": [">Acknowledge<"],
    "alerts": [">Acknowledge<"],
    "presets": ["Apply…", "Review changes…", '<button type="submit" class="btn">Save</button>'],
    "servers": [">Pause<", "Advance warm-up", "Check now"],
    "server-detail": ["Edit server", "/form/"],
    "prospects": ["Upload a CSV", "New campaign"],
    "campaigns": ["New campaign"],
    "campaign-detail": ['data-action="start"', "Test send", ">Edit<"],
    "suppressions": ["Add an address", ">Remove<"],
}


def control_urls(world) -> dict[str, str]:
    return {
        "overview": reverse("dashboard:overview"),
        "alerts": reverse("dashboard:alerts"),
        "presets": reverse("dashboard:presets"),
        "servers": reverse("dashboard:servers"),
        "server-detail": reverse("dashboard:server-detail", args=[world.servers[0].pk]),
        "prospects": reverse("dashboard:prospects"),
        "campaigns": reverse("dashboard:campaigns"),
        "campaign-detail": reverse("dashboard:campaign-detail", args=[world.campaign.pk]),
        "suppressions": reverse("dashboard:suppressions"),
    }


def test_operators_see_the_controls(operator_client, world):
    for name, url in control_urls(world).items():
        body = operator_client.get(url).content.decode()
        for control in CONTROLS[name]:
            assert control in body, f"{control!r} missing for an operator on {name}"


def test_a_viewer_sees_the_pages_without_the_controls(viewer_client, world):
    for name, url in control_urls(world).items():
        response = viewer_client.get(url)
        assert response.status_code == 200, name
        body = response.content.decode()
        for control in CONTROLS[name]:
            assert control not in body, f"{control!r} shown to a viewer on {name}"
        assert "viewer" in body
    body = viewer_client.get(reverse("dashboard:presets")).content.decode()
    assert "disabled" in body  # the rotation strategy is shown, not editable
