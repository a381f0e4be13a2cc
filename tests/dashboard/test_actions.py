"""Operator actions through the dashboard: each calls its service and answers with the partial HTMX swaps."""

from __future__ import annotations

import io

import pytest
from django.urls import reverse

from campaigns import importer
from campaigns.models import Campaign, ImportJob, Message, Suppression
from servers.models import Configuration, HealthCheck, Server, ServerState

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def test_acknowledging_an_alert_swaps_in_the_acknowledged_item(operator_client, operator, world):
    response = operator_client.post(
        reverse("dashboard:alert-acknowledge", args=[world.alert.pk]), {"compact": "1"}, headers=HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.startswith(f'<li class="alert alert--critical alert--acked" id="alert-{world.alert.pk}"')
    assert "acknowledged by olivia" in body
    world.alert.refresh_from_db()
    assert world.alert.acknowledged_by == operator


def test_acknowledging_without_htmx_goes_back_to_the_page(operator_client, world):
    response = operator_client.post(
        reverse("dashboard:alert-acknowledge", args=[world.alert.pk]), {"next": reverse("dashboard:alerts")}
    )
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:alerts")
    response = operator_client.post(
        reverse("dashboard:alert-acknowledge", args=[world.alert.pk]), {"next": "https://elsewhere.example/"}
    )
    assert response["Location"] == reverse("dashboard:overview")


def test_pausing_and_resuming_a_server_swaps_its_row(operator_client, world):
    server = world.servers[0]
    response = operator_client.post(reverse("dashboard:server-pause", args=[server.pk]), headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200
    assert body.startswith(f'<tr id="server-{server.pk}"')
    assert "badge--paused" in body and ">Resume<" in body
    server.refresh_from_db()
    assert server.state == ServerState.PAUSED_MANUAL
    assert "olivia" in server.state_reason

    response = operator_client.post(reverse("dashboard:server-resume", args=[server.pk]), headers=HTMX)
    server.refresh_from_db()
    assert server.state == ServerState.ACTIVE
    assert "badge--up" in response.content.decode()


def test_resuming_a_server_that_is_not_paused_explains_why(operator_client, world):
    server = world.servers[0]
    response = operator_client.post(reverse("dashboard:server-resume", args=[server.pk]), headers=HTMX)
    body = response.content.decode()
    assert 'id="messages"' in body and 'hx-swap-oob="true"' in body
    assert "only a server paused by an operator can be resumed" in body


def test_advancing_warm_up_moves_the_day_and_todays_cap(operator_client, world):
    server = world.servers[1]
    response = operator_client.post(reverse("dashboard:server-advance", args=[server.pk]), headers=HTMX)
    assert "day 2 of 6" in response.content.decode()
    server.refresh_from_db()
    assert server.warmup_manual_advance == 1
    assert server.quotas.get().cap == 100


def test_check_now_probes_the_server_and_records_the_result(operator_client, world):
    server = world.servers[0]
    before = HealthCheck.objects.filter(server=server).count()
    response = operator_client.post(reverse("dashboard:server-check", args=[server.pk]), headers=HTMX)
    assert response.status_code == 200
    assert HealthCheck.objects.filter(server=server).count() == before + 1
    server.refresh_from_db()
    assert server.last_health_check_at is not None and server.last_health_ok is False
    assert "✗" in response.content.decode()


def test_editing_a_server_keeps_the_password_when_left_blank(operator_client, world):
    server = world.servers[3]  # unconfigured slot
    url = reverse("dashboard:server-edit", args=[server.pk])
    data = {
        "name": "Relay Madrid",
        "host": "127.0.0.1",
        "port": "2525",
        "security": "none",
        "username": "relay",
        "password": "first-secret",
        "ip_address": "127.0.0.44",
        "helo_name": "mail.example.com",
        "region": "EU",
        "priority": "1",
        "daily_limit": "400",
        "min_delay_seconds": "0.5",
        "warmup_enabled": "on",
    }
    response = operator_client.post(url, data)
    assert response.status_code == 302
    server.refresh_from_db()
    assert (server.name, server.password, server.state) == ("Relay Madrid", "first-secret", ServerState.ACTIVE)

    operator_client.post(url, {**data, "password": "", "daily_limit": "450"})
    server.refresh_from_db()
    assert server.password == "first-secret"
    assert server.daily_limit == 450


def test_editing_a_server_shows_validation_messages(operator_client, world):
    server = world.servers[0]
    response = operator_client.post(
        reverse("dashboard:server-edit", args=[server.pk]),
        {
            "name": "x",
            "host": "bad host\r\nMAIL FROM",
            "port": "25",
            "security": "none",
            "priority": "1",
            "daily_limit": "-1",
            "min_delay_seconds": "0",
        },
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "errorlist" in body
    assert 'aria-invalid="true"' in body


def test_applying_a_preset_asks_for_confirmation_and_shows_the_change(operator_client, world):
    response = operator_client.post(
        reverse("dashboard:preset-plan"), {"kind": "preset", "preset": "business"}, headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "5 servers added" in body and "5 servers kept" in body
    assert "2,500" in body and "5,000" in body  # capacity before → after
    assert Configuration.objects.get(is_active=True).preset.key == "professional"  # nothing applied yet

    response = operator_client.post(
        reverse("dashboard:preset-apply"), {"kind": "preset", "preset": "business"}, headers=HTMX
    )
    assert response.status_code == 200 and response["HX-Redirect"] == reverse("dashboard:presets")
    assert Configuration.objects.get(is_active=True).preset.key == "business"
    assert Server.objects.filter(in_pool=True, kind="smtp").count() == 10
    body = operator_client.get(reverse("dashboard:presets")).content.decode()
    assert "Applied Business - Ten Servers: 10 servers, 5,000 emails a day." in body


def test_a_custom_configuration_is_validated_with_messages(operator_client, world):
    response = operator_client.post(
        reverse("dashboard:preset-plan"),
        {"kind": "custom", "name": "", "server_count": "0", "daily_limit_per_server": "abc"},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#custom-form", "outerHTML")
    body = response.content.decode()
    assert body.count('class="errorlist') == 3
    response = operator_client.post(
        reverse("dashboard:preset-plan"),
        {
            "kind": "custom",
            "name": "Two regions",
            "server_count": "1",
            "daily_limit_per_server": "300",
            "regions": "US, EU",
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "2 regions need at least 2 servers" in response.content.decode()


def test_a_custom_configuration_is_confirmed_then_applied(operator_client, world):
    data = {
        "kind": "custom",
        "name": "Eight big",
        "server_count": "8",
        "daily_limit_per_server": "600",
        "include_sendgrid": "on",
        "warmup_enabled": "on",
    }
    body = operator_client.post(reverse("dashboard:preset-plan"), data, headers=HTMX).content.decode()
    assert "3 servers added" in body and "9,600" in body
    assert 'name="server_count" value="8"' in body  # the confirmation carries the form along
    operator_client.post(reverse("dashboard:preset-apply"), data, headers=HTMX)
    config = Configuration.objects.get(is_active=True)
    assert (config.name, config.server_count, config.emails_per_day) == ("Eight big", 8, 9600)


def test_the_rotation_strategy_can_be_changed(operator_client, world):
    response = operator_client.post(reverse("dashboard:rotation"), {"strategy": "best-performance"}, headers=HTMX)
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert Configuration.objects.get(is_active=True).rotation_strategy == "best-performance"
    response = operator_client.post(reverse("dashboard:rotation"), {"strategy": "fastest"}, headers=HTMX)
    assert response.status_code == 422


def test_the_volume_box_recommends_the_guides_preset(operator_client, world):
    for volume, name in (
        (400, "Starter - One Server"),
        (1200, "Starter Triple"),
        (5000, "Business - Ten"),
        (9000, "Enterprise - Fifteen"),
    ):
        body = operator_client.get(reverse("dashboard:preset-recommend"), {"emails_per_day": volume}).content.decode()
        assert name in body, volume
    body = operator_client.get(reverse("dashboard:preset-recommend"), {"emails_per_day": 3000}).content.decode()
    assert "Above its capacity" in body  # the guide's ladder puts 3,000 on the 2,500-a-day preset
    body = operator_client.get(reverse("dashboard:preset-recommend"), {"emails_per_day": -5}).content.decode()
    assert "field-error" in body


def test_suppressing_and_removing_an_address(operator_client, world):
    response = operator_client.post(
        reverse("dashboard:suppression-add"), {"email": "Bob@Example.com", "reason": "manual"}
    )
    assert response.status_code == 302
    row = Suppression.objects.get(email="bob@example.com")
    assert row.reason == "manual" and "olivia" in row.source
    operator_client.post(reverse("dashboard:suppression-remove"), {"email": "bob@example.com"})
    assert not Suppression.objects.filter(email="bob@example.com").exists()
    response = operator_client.post(reverse("dashboard:suppression-add"), {"email": "not-an-address"})
    assert response.status_code == 422


def test_uploading_a_csv_creates_a_job_whose_progress_and_errors_show(operator_client, world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    upload = io.BytesIO(b"email,name,company\nana@example.es,Ana,Acme\nnot-an-email,Zed,Z\ncarla@example.mx,Carla,Cc\n")
    upload.name = "new leads.csv"
    response = operator_client.post(reverse("dashboard:prospect-upload"), {"new_list_name": "Autumn", "file": upload})
    job = ImportJob.objects.get(filename="new leads.csv")
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:import-detail", args=[job.pk])
    pending = operator_client.get(reverse("dashboard:import-progress", args=[job.pk])).content.decode()
    assert 'data-poll="1"' in pending  # keeps polling until the worker is done

    importer.run_import(job_id=job.pk)  # what the worker does
    done = operator_client.get(reverse("dashboard:import-progress", args=[job.pk])).content.decode()
    assert "data-poll" not in done
    assert 'value="100"' in done and "not-an-email" in done
    assert job.prospect_list.name == "Autumn"


def test_uploading_without_a_list_or_file_explains_what_is_missing(operator_client, world):
    response = operator_client.post(reverse("dashboard:prospect-upload"), {})
    assert response.status_code == 422
    body = response.content.decode()
    assert "Choose a list or give the new list a name." in body and "This field is required." in body


def campaign_data(world, **changes):
    data = {
        "name": "Autumn offer",
        "prospect_list": str(world.prospect_list.pk),
        "from_name": "Sales",
        "from_email": "sales@example.com",
        "reply_to": "",
        "subject": "Hola {{ name }}",
        "html_body": "<p>Hi {{ name }}</p>",
        "text_body": "",
        "scheduled_at": "",
        "daily_max": "",
    }
    data.update(changes)
    return data


def test_creating_a_campaign_validates_then_saves(operator_client, world):
    response = operator_client.post(
        reverse("dashboard:campaign-create"), campaign_data(world, from_email="nope", html_body="")
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "Enter a valid email address." in body and "Write an HTML body, a text body, or both." in body
    response = operator_client.post(
        reverse("dashboard:campaign-create"), campaign_data(world, subject="Hi\r\nBcc: x@y.z")
    )
    assert response.status_code == 422
    response = operator_client.post(reverse("dashboard:campaign-create"), campaign_data(world))
    campaign = Campaign.objects.get(name="Autumn offer")
    assert response.status_code == 302 and response["Location"] == reverse(
        "dashboard:campaign-detail", args=[campaign.pk]
    )


def test_editing_a_campaign_saves_only_what_changed(operator_client, world):
    url = reverse("dashboard:campaign-update", args=[world.campaign.pk])
    data = {
        **campaign_data(world),
        "name": world.campaign.name,
        "subject": "New subject {{ name }}",
        "html_body": world.campaign.html_body,
        "text_body": world.campaign.text_body,
    }
    response = operator_client.post(url, data)
    assert response.status_code == 302
    world.campaign.refresh_from_db()
    assert world.campaign.subject == "New subject {{ name }}"


def test_the_live_preview_renders_the_form_for_the_lists_first_prospect(operator_client, world):
    response = operator_client.post(reverse("dashboard:campaign-preview"), campaign_data(world), headers=HTMX)
    body = response.content.decode()
    assert "Hola Ana" in body and "Ana &lt;ana@example.es&gt;" in body
    frame = body.split('src="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    html = operator_client.get(frame).content.decode()
    assert "Hi Ana" in html and "nsubscribe" in html
    broken = operator_client.post(
        reverse("dashboard:campaign-preview"), campaign_data(world, from_email="x"), headers=HTMX
    )
    assert "flash--error" in broken.content.decode()


def test_starting_pausing_resuming_and_cancelling_a_campaign(
    operator_client, world, django_capture_on_commit_callbacks
):
    campaign = world.campaign

    def action(name: str):
        return operator_client.post(reverse("dashboard:campaign-action", args=[campaign.pk, name]), headers=HTMX)

    with django_capture_on_commit_callbacks():
        body = action("start").content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING and campaign.total == 2
    assert Message.objects.filter(campaign=campaign).count() == 2
    assert 'data-poll="2"' in body and 'data-action="pause"' in body
    action("pause")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    with django_capture_on_commit_callbacks():
        action("resume")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    body = action("cancel").content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert "data-poll" not in body and "data-action" not in body
    body = action("start").content.decode()
    assert "only a draft campaign can be started" in body
    assert operator_client.post(reverse("dashboard:campaign-action", args=[campaign.pk, "explode"])).status_code == 404


def test_a_test_send_goes_out_through_the_pool(operator_client, world, relay):
    server = world.servers[0]
    Server.objects.filter(pk=server.pk).update(host=relay.host, port=relay.port, security="none", verify_tls=False)
    Server.objects.exclude(pk=server.pk).update(state=ServerState.PAUSED_MANUAL)
    response = operator_client.post(
        reverse("dashboard:campaign-test", args=[world.campaign.pk]), {"to": "tester@example.com"}, headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200, body
    assert "Sent through SMTP Server 1" in body
    assert [r for m in relay.messages for r in m.rcpt_tos] == ["tester@example.com"]
