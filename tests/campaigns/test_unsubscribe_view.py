"""/u/<token>/: GET confirms, POST (RFC 8058 one-click) unsubscribes at once, forged tokens are refused."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from campaigns import services
from campaigns.models import DeliveryEvent, Message, MessageStatus, Suppression
from campaigns.unsubscribe import make_token
from tests.support.pipeline import campaign, prospect_list

pytestmark = pytest.mark.django_db

ADDRESS = "agent3@agency.test"


@pytest.fixture
def anonymous() -> Client:
    # Mail clients POST without a session or a CSRF token; the test client must not add either.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def running():
    plist = prospect_list(10)
    spring = services.campaign_start(campaign=campaign(plist))
    autumn = services.campaign_start(campaign=campaign(plist, name="Autumn rates"))
    Message.objects.filter(campaign=autumn, to_email=ADDRESS).update(status=MessageStatus.DEFERRED, attempts=1)
    return spring, autumn


def url_for(token: str) -> str:
    return reverse("unsubscribe", kwargs={"token": token})


def one_click(client: Client, token: str):
    return client.post(url_for(token), data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")


def test_a_one_click_post_unsubscribes_at_once_without_login_or_csrf_token(anonymous, running):
    spring, autumn = running
    message = Message.objects.get(campaign=spring, to_email=ADDRESS)
    token = make_token(email=ADDRESS, message_id=message.pk, campaign_id=spring.pk)

    response = one_click(anonymous, token)

    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content
    suppression = Suppression.objects.get(email=ADDRESS)
    assert suppression.reason == Suppression.Reason.UNSUBSCRIBE
    assert suppression.source == f"one-click (campaign {spring.pk})"
    # Its pending messages, in every campaign, will never go out; the others still will.
    assert set(Message.objects.filter(to_email=ADDRESS).values_list("status", flat=True)) == {MessageStatus.SUPPRESSED}
    assert Message.objects.filter(status=MessageStatus.QUEUED).count() == 18
    spring.refresh_from_db(), autumn.refresh_from_db()
    assert spring.suppressed == 1 and autumn.suppressed == 1
    assert DeliveryEvent.objects.filter(message=message, kind=DeliveryEvent.Kind.UNSUBSCRIBED).count() == 1


def test_a_second_post_changes_nothing(anonymous, running):
    spring, _ = running
    message = Message.objects.get(campaign=spring, to_email=ADDRESS)
    token = make_token(email=ADDRESS, message_id=message.pk, campaign_id=spring.pk)

    assert one_click(anonymous, token).status_code == 200
    assert one_click(anonymous, token).status_code == 200

    assert Suppression.objects.filter(email=ADDRESS).count() == 1
    assert DeliveryEvent.objects.filter(message=message, kind=DeliveryEvent.Kind.UNSUBSCRIBED).count() == 1
    spring.refresh_from_db()
    assert spring.suppressed == 1


def test_a_get_only_asks_for_confirmation(anonymous, running):
    token = make_token(email=ADDRESS, message_id=None, campaign_id=None)

    response = anonymous.get(url_for(token))

    assert response.status_code == 200
    assert ADDRESS.encode() in response.content
    assert b'<form method="post"' in response.content
    assert response["Cache-Control"].startswith("max-age=0")
    assert not Suppression.objects.exists()
    assert not Message.objects.filter(status=MessageStatus.SUPPRESSED).exists()


def test_the_confirmation_form_unsubscribes(anonymous, running):
    token = make_token(email=ADDRESS, message_id=None, campaign_id=None)

    response = anonymous.post(url_for(token), {"confirm": "1"})

    assert response.status_code == 200
    assert Suppression.objects.get(email=ADDRESS).source == "unsubscribe page"


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda token: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"), id="bad-signature"),
        pytest.param(lambda token: token.split(".")[0], id="signature-missing"),
        pytest.param(lambda token: "eyJhIjoxfQ." + token.split(".")[-1], id="payload-swapped"),
        pytest.param(lambda token: "preview", id="preview-token"),
    ],
)
def test_a_forged_token_is_refused(anonymous, running, forge):
    token = forge(make_token(email=ADDRESS, message_id=None, campaign_id=None))

    posted = one_click(anonymous, token)
    shown = anonymous.get(url_for(token))

    assert posted.status_code == 400 and shown.status_code == 400
    assert b"not valid" in posted.content
    assert not Suppression.objects.exists()
    assert not Message.objects.filter(status=MessageStatus.SUPPRESSED).exists()


def test_a_spanish_recipient_reads_every_state_of_the_page_in_spanish(running):
    # The seed's recipients are travel agencies in Spain and Latin America; their mail clients ask for Spanish.
    spanish = Client(enforce_csrf_checks=True, headers={"accept-language": "es-ES,es;q=0.9"})
    token = make_token(email=ADDRESS, message_id=None, campaign_id=None)

    asked = spanish.get(url_for(token)).content.decode()
    done = spanish.post(url_for(token), {"confirm": "1"}).content.decode()
    invalid = spanish.get(url_for("preview")).content.decode()

    assert f"¿Dejar de recibir correos en <strong>{ADDRESS}</strong>?" in asked
    assert "Darse de baja</button>" in asked
    assert "<h1>Te has dado de baja</h1>" in done
    assert f"No te enviaremos más correos a <strong>{ADDRESS}</strong>." in done
    assert "Este enlace para darte de baja no es válido" in invalid
    for page in (asked, done, invalid):
        assert '<html lang="es' in page
        assert "unsubscribe" not in page.lower().replace("/u/", "")
