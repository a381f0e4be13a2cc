from __future__ import annotations

import base64
import datetime as dt
import json
import time

import pytest
import time_machine
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings as django_settings
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from campaigns.models import DeliveryEvent, Message, MessageStatus, Suppression
from servers.daytime import sending_day
from servers.models import ServerDailyStat, ServerKind
from tests.support.monitoring import make_server

# The webhook routes, then the site's own (the lead mounts campaigns.webhook_urls at the root).
urlpatterns = [path("", include("campaigns.webhook_urls")), path("", include("mailops.urls"))]

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

URL = "/webhooks/sendgrid/"
SENT_AT = timezone.now() - dt.timedelta(hours=2)


def public_key_b64(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The verification key as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sign(private_key: ec.EllipticCurvePrivateKey, body: bytes, timestamp: str) -> str:
    """Exactly as SendGrid signs: ECDSA P-256 over timestamp + payload, base64 DER signature."""
    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


@pytest.fixture
def key(settings):
    private_key = ec.generate_private_key(ec.SECP256R1())
    settings.MAILOPS = {**django_settings.MAILOPS, "SENDGRID_WEBHOOK_PUBLIC_KEY": public_key_b64(private_key),
                        "SENDGRID_WEBHOOK_MAX_AGE_SECONDS": 600}
    return private_key


@pytest.fixture
def client():
    # CSRF checks on, as in production: the signature must be the only thing the view needs.
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def sendgrid():
    return make_server(1, kind=ServerKind.SENDGRID, name="SendGrid", host="", ip_address=None, api_key="SG.x")


def message_to(email: str, server, *, pk_hint: str = "") -> Message:
    message = Message.objects.create(
        to_email=email, status=MessageStatus.SENT, server=server, sent_at=SENT_AT, attempts=1
    )
    message.message_id = f"<{message.pk}.{email.split('@')[0]}@mailops.test>"
    message.save(update_fields=["message_id"])
    return message


def event(kind: str, message: Message, n: int, **extra) -> dict:
    return {
        "email": message.to_email,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": f"evt-{kind}-{message.pk}-{n}",
        "sg_message_id": f"sgid-{message.pk}.filter001",
        "mailops_message": str(message.pk),
        "mailops_message_id": message.message_id,
        **extra,
    }


def post(client, body: bytes, *, signature: str | None, timestamp: str | None):
    headers = {}
    if signature is not None:
        headers["HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE"] = signature
    if timestamp is not None:
        headers["HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP"] = timestamp
    return client.post(URL, data=body, content_type="application/json", **headers)


def signed_post(client, key, events: list[dict], *, timestamp: str | None = None):
    body = json.dumps(events).encode()
    timestamp = timestamp or str(int(time.time()))
    return post(client, body, signature=sign(key, body, timestamp), timestamp=timestamp)


def stat_for(message: Message) -> ServerDailyStat:
    return ServerDailyStat.objects.get(server=message.server, day=sending_day(SENT_AT))


def test_a_signed_batch_is_recorded_without_login_or_csrf_token(client, key, sendgrid):
    delivered = message_to("ana@example.com", sendgrid)
    bounced = message_to("gone@example.com", sendgrid)
    complained = message_to("angry@example.com", sendgrid)
    unsubscribed = message_to("bye@example.com", sendgrid)
    deferred = message_to("later@example.com", sendgrid)

    response = signed_post(client, key, [
        event("processed", delivered, 0),
        event("delivered", delivered, 1, response="250 OK"),
        event("bounce", bounced, 1, type="bounce", status="5.1.1", reason="550 5.1.1 No such user"),
        event("spamreport", complained, 1),
        event("unsubscribe", unsubscribed, 1),
        event("deferred", deferred, 1, response="451 4.7.1 Greylisted"),
    ])

    assert response.status_code == 200
    assert response.json() == {"received": 6, "recorded": 5, "duplicates": 0, "ignored": 1}
    assert dict(Suppression.objects.values_list("email", "reason")) == {
        "gone@example.com": "hard_bounce", "angry@example.com": "complaint", "bye@example.com": "unsubscribe",
    }
    bounced.refresh_from_db()
    assert bounced.status == MessageStatus.BOUNCED
    row = stat_for(delivered)
    assert (row.delivered, row.bounced, row.returned, row.complained, row.deferred) == (1, 1, 1, 1, 1)
    assert set(DeliveryEvent.objects.values_list("external_id", flat=True)) == {
        f"sg:evt-delivered-{delivered.pk}-1", f"sg:evt-bounce-{bounced.pk}-1", f"sg:evt-spamreport-{complained.pk}-1",
        f"sg:evt-unsubscribe-{unsubscribed.pk}-1", f"sg:evt-deferred-{deferred.pk}-1",
    }


def test_an_unsigned_request_is_refused(client, key, sendgrid):
    message = message_to("ana@example.com", sendgrid)
    body = json.dumps([event("unsubscribe", message, 1)]).encode()

    response = post(client, body, signature=None, timestamp=None)

    assert response.status_code == 403
    assert not Suppression.objects.exists()
    assert not DeliveryEvent.objects.exists()


def test_a_request_signed_with_another_key_is_refused(client, key, sendgrid):
    message = message_to("ana@example.com", sendgrid)
    impostor = ec.generate_private_key(ec.SECP256R1())

    response = signed_post(client, impostor, [event("unsubscribe", message, 1)])

    assert response.status_code == 403
    assert not Suppression.objects.exists()


def test_a_body_changed_after_signing_is_refused(client, key, sendgrid):
    message = message_to("ana@example.com", sendgrid)
    body = json.dumps([event("delivered", message, 1)]).encode()
    timestamp = str(int(time.time()))
    signature = sign(key, body, timestamp)

    response = post(client, body.replace(b"delivered", b"spamreport"), signature=signature, timestamp=timestamp)

    assert response.status_code == 403
    assert not DeliveryEvent.objects.exists()


def test_a_garbled_signature_is_refused(client, key):
    response = post(client, b"[]", signature="not base64!", timestamp=str(int(time.time())))

    assert response.status_code == 403


@pytest.mark.parametrize("age", [601, -601, 3600])
def test_a_stale_or_future_signed_request_is_refused(client, key, sendgrid, age):
    message = message_to("ana@example.com", sendgrid)

    response = signed_post(client, key, [event("unsubscribe", message, 1)], timestamp=str(int(time.time()) - age))

    assert response.status_code == 403
    assert "stale" in response.json()["error"]
    assert not Suppression.objects.exists()


def test_a_replayed_request_is_refused_and_changes_nothing(client, key, sendgrid):
    message = message_to("gone@example.com", sendgrid)
    body = json.dumps([event("bounce", message, 1, type="bounce", status="5.1.1", reason="550 no such user")]).encode()
    timestamp = str(int(time.time()))
    signature = sign(key, body, timestamp)

    first = post(client, body, signature=signature, timestamp=timestamp)
    replay = post(client, body, signature=signature, timestamp=timestamp)

    assert first.json()["recorded"] == 1
    assert replay.status_code == 409
    assert "replay" in replay.json()["error"]
    assert DeliveryEvent.objects.count() == 1
    row = stat_for(message)
    assert (row.bounced, row.returned) == (1, 1)


def test_a_replay_with_the_signature_re_encoded_is_refused_too(client, key, sendgrid):
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    message = message_to("ana@example.com", sendgrid)
    body = json.dumps([event("unsubscribe", message, 1)]).encode()
    timestamp = str(int(time.time()))
    signature = sign(key, body, timestamp)
    # ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s), without the key.
    r, s = decode_dss_signature(base64.b64decode(signature))
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256's group order
    twin = base64.b64encode(encode_dss_signature(r, order - s)).decode()
    assert twin != signature

    assert post(client, body, signature=signature, timestamp=timestamp).status_code == 200
    assert post(client, body, signature=twin, timestamp=timestamp).status_code == 409


def test_a_new_delivery_of_events_already_seen_is_taken_and_deduplicated(client, key, sendgrid):
    message = message_to("gone@example.com", sendgrid)
    events = [event("bounce", message, 1, type="bounce", status="5.1.1", reason="550 no such user")]

    first = signed_post(client, key, events, timestamp=str(int(time.time()) - 5))
    again = signed_post(client, key, events)  # SendGrid retrying: signed afresh, same sg_event_id

    assert first.json()["recorded"] == 1
    assert again.status_code == 200
    assert again.json() == {"received": 1, "recorded": 0, "duplicates": 1, "ignored": 0}
    assert DeliveryEvent.objects.count() == 1


def test_requests_taken_are_forgotten_once_they_could_only_be_stale(client, key, sendgrid):
    from campaigns.models import WebhookDelivery

    message = message_to("ana@example.com", sendgrid)
    with time_machine.travel(timezone.now(), tick=False) as clock:
        signed_post(client, key, [event("delivered", message, 1)], timestamp=str(int(time.time())))
        assert WebhookDelivery.objects.count() == 1
        clock.shift(dt.timedelta(seconds=2 * 600 + 1))
        signed_post(client, key, [event("delivered", message, 2)], timestamp=str(int(time.time())))

    assert WebhookDelivery.objects.count() == 1


def test_duplicate_event_ids_in_one_batch_are_recorded_once(client, key, sendgrid):
    message = message_to("ana@example.com", sendgrid)
    once = event("delivered", message, 1)

    response = signed_post(client, key, [once, once])

    assert response.json()["duplicates"] == 1
    assert stat_for(message).delivered == 1


def test_without_a_configured_key_every_request_is_refused(client, settings, sendgrid):
    settings.MAILOPS = {**django_settings.MAILOPS, "SENDGRID_WEBHOOK_PUBLIC_KEY": ""}
    key = ec.generate_private_key(ec.SECP256R1())
    message = message_to("ana@example.com", sendgrid)

    response = signed_post(client, key, [event("unsubscribe", message, 1)])

    assert response.status_code == 503
    assert not Suppression.objects.exists()


def test_a_blocked_bounce_fails_the_message_without_suppressing_the_recipient(client, key, sendgrid):
    message = message_to("someone@example.com", sendgrid)

    signed_post(client, key, [
        event("bounce", message, 1, type="blocked", status="5.7.1", reason="554 5.7.1 blocked using zen.spamhaus.org")
    ])

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert not Suppression.objects.exists()
    row = stat_for(message)
    assert (row.failed, row.policy_blocks, row.bounced) == (1, 1, 0)


def test_a_drop_for_a_bounced_address_fails_the_message_and_suppresses(client, key, sendgrid):
    message = message_to("old@example.com", sendgrid)

    signed_post(client, key, [event("dropped", message, 1, reason="Bounced Address")])

    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert Suppression.objects.get().reason == "hard_bounce"
    assert (stat_for(message).failed, stat_for(message).returned) == (1, 1)


def test_an_event_whose_address_differs_from_the_message_touches_no_message(client, key, sendgrid):
    message = message_to("ana@example.com", sendgrid)
    mixed_up = event("bounce", message, 1, type="bounce", status="5.1.1", reason="550 no such user")
    mixed_up["email"] = "bob@example.com"

    signed_post(client, key, [mixed_up])

    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert DeliveryEvent.objects.get().message is None
    # SendGrid's signed word that bob@ bounces still protects bob@.
    assert Suppression.objects.get().email == "bob@example.com"


def test_a_body_that_is_not_a_list_is_a_bad_request(client, key):
    response = signed_post(client, key, {"event": "delivered"})  # type: ignore[arg-type]

    assert response.status_code == 400


def test_only_post_is_allowed(client, key):
    assert client.get(URL).status_code == 405
