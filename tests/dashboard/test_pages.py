"""Every page and partial answers 200 with its key content, and nothing is served without login."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def pages(world) -> list[tuple[str, list[str]]]:
    server = world.servers[0]
    return [
        (
            reverse("dashboard:overview"),
            [
                "Servers active",
                "Average reputation",
                "capacity used",
                "daily-series",
                "Latest alerts",
                "SMTP Server 1 is down",
            ],
        ),
        (reverse("dashboard:stats-partial"), ['id="stat-cards"', 'data-poll="5"', "3<span", "/ 5"]),
        (reverse("dashboard:recommendations-partial"), ['id="recommendations"', "warming up"]),
        (reverse("dashboard:alerts-partial"), ['id="latest-alerts"', "SMTP Server 1 is down: connection refused"]),
        (reverse("dashboard:daily-chart-partial"), ['id="daily-series"', '"sent": [']),
        (reverse("dashboard:alerts"), ["server_down", "SMTP Server 1 is up again"]),
        (
            reverse("dashboard:presets"),
            [
                "Starter - One Server",
                "Ultra Secure",
                "★",
                "Cost comparison",
                "$1.06",
                "$1.19",
                "How many emails a day?",
            ],
        ),
        (reverse("dashboard:preset-recommend") + "?emails_per_day=2000", ["Professional - Five Servers", "80%"]),
        (reverse("dashboard:servers"), ["SMTP Server 1", "127.0.0.11", "unconfigured", "day 1 of 6", "20 / 50"]),
        (reverse("dashboard:server-rows"), ['id="server-rows"', "SMTP Server 5"]),
        (
            reverse("dashboard:server-detail", args=[server.pk]),
            [
                "reputation-chart",
                "volume-chart",
                "connection refused on 127.0.0.1:9",
                "Listed for spam sources",
                "zen.spamhaus.org",
                "Edit server",
            ],
        ),
        (
            reverse("dashboard:server-form", args=[server.pk]),
            ['id="server-form"', 'name="password"', 'value="127.0.0.11"'],
        ),
        (reverse("dashboard:prospects"), ["Spring leads", "Upload a CSV", "leads.csv"]),
        (reverse("dashboard:list-detail", args=[world.prospect_list.pk]), ["ana@example.es", "Bobco"]),
        (
            reverse("dashboard:import-detail", args=[world.job.pk]),
            ["import-bar", "not-an-email", "Download all as CSV"],
        ),
        (reverse("dashboard:import-progress", args=[world.job.pk]), ['id="import-progress"', "Done"]),
        (reverse("dashboard:campaigns"), ["Spring launch", "Draft"]),
        (reverse("dashboard:campaign-new"), ["campaign-form", "Live preview"]),
        (
            reverse("dashboard:campaign-detail", args=[world.campaign.pk]),
            ["Spring launch", "campaign-bar", "Hello Ana", "Test send", "Start"],
        ),
        (reverse("dashboard:campaign-edit", args=[world.campaign.pk]), ["Spring launch", "Hi {{ name }}"]),
        (reverse("dashboard:campaign-progress", args=[world.campaign.pk]), ['id="campaign-progress"', "Remaining"]),
        (reverse("dashboard:suppressions"), ["gone@example.org", "Hard bounce"]),
    ]


def test_every_page_and_partial_renders_its_key_content(operator_client, world):
    for url, expected in pages(world):
        response = operator_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for text in expected:
            assert text in body, f"{text!r} missing from {url}"


def test_no_page_is_served_without_login(client, world):
    for url, _expected in pages(world):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_the_login_page_renders_with_the_language_switch(client):
    response = client.get(reverse("login"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' in body and 'name="password"' in body
    assert 'name="language"' in body


def test_pages_carry_no_inline_script_or_style(operator_client, world):
    for url, _expected in pages(world):
        body = operator_client.get(url).content.decode()
        assert " style=" not in body, url
        assert "<style" not in body, url
        for chunk in body.split("<script")[1:]:
            head = chunk.split(">", 1)[0]
            assert "src=" in head or 'type="application/json"' in head, f"inline script in {url}: {head}"


def test_every_page_sends_the_csrf_token_with_htmx_requests(operator_client, world):
    body = operator_client.get(reverse("dashboard:overview")).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in body
    assert '"includeIndicatorStyles":false' in body
    assert '"allowEval":false' in body and '"attributesToSettle":["class","width","height"]' in body


def test_the_server_page_never_renders_the_stored_password(operator_client, world):
    server = world.servers[0]
    server.password = "s3cret-relay-password"
    server.save()
    for url in (
        reverse("dashboard:server-detail", args=[server.pk]),
        reverse("dashboard:server-form", args=[server.pk]),
    ):
        assert "s3cret-relay-password" not in operator_client.get(url).content.decode()
    assert (
        "A secret is stored."
        in operator_client.get(reverse("dashboard:server-form", args=[server.pk])).content.decode()
    )


def test_the_import_error_report_downloads_as_csv(operator_client, world):
    response = operator_client.get(reverse("dashboard:import-errors", args=[world.job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="leads-errors.csv"' in response["Content-Disposition"]
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "line,reason,raw"
    assert lines[1].startswith("3,")


def test_the_preview_frame_renders_the_saved_campaign_with_its_own_policy(operator_client, world):
    response = operator_client.get(reverse("dashboard:campaign-preview-frame") + f"?campaign={world.campaign.pk}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Hi Ana from Acme" in body
    assert "nsubscribe" in body  # the footer every marketing message carries
    policy = response["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_search_filters_lists_prospects_and_suppressions(operator_client, world):
    body = operator_client.get(
        reverse("dashboard:list-detail", args=[world.prospect_list.pk]) + "?q=bob"
    ).content.decode()
    assert "bob@example.com" in body and "ana@example.es" not in body
    body = operator_client.get(reverse("dashboard:prospects") + "?q=nothing-like-this").content.decode()
    assert "No list matches." in body
    body = operator_client.get(reverse("dashboard:suppressions") + "?q=gone").content.decode()
    assert "gone@example.org" in body
    body = operator_client.get(reverse("dashboard:suppressions") + "?q=nobody").content.decode()
    assert "gone@example.org" not in body


def test_the_alerts_page_filters_by_level_kind_and_acknowledgement(operator_client, world):
    url = reverse("dashboard:alerts")
    body = operator_client.get(url + "?level=critical").content.decode()
    assert "is down: connection refused" in body and "is up again" not in body
    body = operator_client.get(url + "?kind=server_up").content.decode()
    assert "is up again" in body and "is down: connection refused" not in body
    body = operator_client.get(url + "?acknowledged=yes").content.decode()
    assert "No alerts match these filters." in body
    partial = operator_client.get(url + "?acknowledged=no", headers={"HX-Request": "true"}).content.decode()
    assert partial.startswith('<section id="alert-table"') and "<html" not in partial
