"""SendGrid's Event Webhook: POST /webhooks/sendgrid/.

The signature is the authentication, so the view needs no login and no CSRF token:
- SendGrid signs timestamp + raw body with ECDSA P-256 / SHA-256 and sends the base64
  DER signature and the timestamp in X-Twilio-Email-Event-Webhook-Signature/-Timestamp;
  the sendgrid package's EventWebhook helper verifies it against the public key in
  settings.MAILOPS["SENDGRID_WEBHOOK_PUBLIC_KEY"];
- unsigned or wrongly signed requests get 403, and so do signed ones whose timestamp is
  more than SENDGRID_WEBHOOK_MAX_AGE_SECONDS away from now (a captured request replayed
  later);
- a request replayed inside that window gets 409: each request taken leaves a
  WebhookDelivery row (a digest of its timestamp and body, unique) until it could only be
  stale. SendGrid signs every delivery afresh, so a retry of events already taken is a new
  request: it is answered 200, and its events are recorded once per sg_event_id
  (DeliveryEvent.external_id), as duplicates within one batch are;
- without a configured key every request is refused (503): unsigned events are never taken.

Events map onto campaigns/events.py: delivered, deferred, bounce (hard unless SendGrid
says "blocked" or the reason is a policy block), dropped (failed; suppresses when SendGrid
dropped it for a bounce, unsubscribe or spam report), spamreport (complaint) and
unsubscribe/group_unsubscribe. Other types (processed, open, click…) are acknowledged and
ignored. Messages are matched by the custom args the sender put on each message.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from sendgrid.helpers.eventwebhook import EventWebhook, EventWebhookHeader

from servers.outcome import Category
from servers.transports.sendgrid import MESSAGE_ID_ARG

from . import events
from .composer import MESSAGE_PK_ARG
from .dsn import classify_dsn_status, normalize_message_id
from .models import DeliveryEvent, Message, Suppression, WebhookDelivery

log = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
SIMPLE_KINDS = {
    "delivered": Kind.DELIVERED,
    "deferred": Kind.DEFERRED,
    "spamreport": Kind.COMPLAINED,
    "unsubscribe": Kind.UNSUBSCRIBED,
    "group_unsubscribe": Kind.UNSUBSCRIBED,
}
# SendGrid's own reasons for dropping a message, and the suppression each one implies.
DROP_REASONS = {
    "bounced address": Suppression.Reason.HARD_BOUNCE,
    "unsubscribed address": Suppression.Reason.UNSUBSCRIBE,
    "spam reporting address": Suppression.Reason.COMPLAINT,
}


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Tally:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    ignored: int = 0


def max_age_seconds() -> int:
    return int(settings.MAILOPS.get("SENDGRID_WEBHOOK_MAX_AGE_SECONDS", 600))


def verify(body: bytes, signature: str, timestamp: str, *, now: float | None = None) -> None:
    """Raise Refused unless the body carries a valid, fresh SendGrid signature."""
    public_key = settings.MAILOPS.get("SENDGRID_WEBHOOK_PUBLIC_KEY", "").strip()
    if not public_key:
        raise Refused(503, "the SendGrid webhook is not configured: set SENDGRID_WEBHOOK_PUBLIC_KEY")
    if not signature or not timestamp:
        raise Refused(403, "unsigned request: the signature and timestamp headers are required")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise Refused(400, "the timestamp header is not a Unix time") from None
    max_age = max_age_seconds()
    now = time.time() if now is None else now
    if abs(now - sent_at) > max_age:
        raise Refused(403, f"stale request: signed {int(now - sent_at)} s ago, more than {max_age} s")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the body is not UTF-8") from None
    helper = EventWebhook()
    try:
        key = helper.convert_public_key_to_ecdsa(public_key)
    except (ValueError, TypeError):
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 EC public key; every webhook is refused")
        raise Refused(503, "the SendGrid webhook key is misconfigured") from None
    try:
        valid = helper.verify_signature(payload, signature, timestamp, public_key=key)
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise Refused(403, "bad signature")


@csrf_exempt
@login_not_required
@require_POST
def sendgrid_events(request: HttpRequest) -> JsonResponse:
    body = request.body
    try:
        verify(
            body,
            request.headers.get(EventWebhookHeader.SIGNATURE, ""),
            request.headers.get(EventWebhookHeader.TIMESTAMP, ""),
        )
        try:
            batch = json.loads(body)
        except ValueError:
            raise Refused(400, "the body is not JSON") from None
        if not isinstance(batch, list):
            raise Refused(400, "the body must be a JSON array of events")
        delivery = take_delivery(body, timestamp=request.headers.get(EventWebhookHeader.TIMESTAMP, ""))
        if delivery is None:
            raise Refused(409, "replayed request: this signed request was already taken")
    except Refused as refused:
        log.warning("SendGrid webhook refused (%s): %s", refused.status, refused.reason)
        return JsonResponse({"error": refused.reason}, status=refused.status)
    try:
        tally = process_batch(batch)
    except BaseException:
        # Not taken after all: SendGrid's retry of this request must get through.
        WebhookDelivery.objects.filter(pk=delivery.pk).delete()
        raise
    return JsonResponse(tally.__dict__)


def take_delivery(body: bytes, *, timestamp: str) -> WebhookDelivery | None:
    """Remember a verified request; None when the same signed request was taken before.

    The row commits on its own, before the events are processed: holding one transaction
    over a whole batch would keep the campaign and server counter rows it updates locked
    against the sending pipeline. The unique digest decides between two concurrent copies.
    """
    digest = hashlib.sha256(timestamp.encode() + b"\n" + body).hexdigest()
    now = timezone.now()
    # A timestamp is accepted up to max_age either side of now, so a request taken now
    # could be replayed until 2 × max_age from now; after that it can only be stale.
    WebhookDelivery.objects.filter(created_at__lt=now - dt.timedelta(seconds=2 * max_age_seconds())).delete()
    try:
        with transaction.atomic():
            return WebhookDelivery.objects.create(digest=digest, created_at=now)
    except IntegrityError:
        return None


def process_batch(batch: list[Any]) -> Tally:
    tally = Tally(received=len(batch))
    for item in batch:
        if not isinstance(item, dict):
            tally.ignored += 1
            continue
        outcome = process_event(item)
        if outcome == "recorded":
            tally.recorded += 1
        elif outcome == "duplicate":
            tally.duplicates += 1
        else:
            tally.ignored += 1
    return tally


def process_event(item: dict[str, Any]) -> str:
    """Record one SendGrid event: "recorded", "duplicate" or "ignored"."""
    name = str(item.get("event", "")).lower()
    email = str(item.get("email", "")).strip()
    message = match_message(item, email)
    common: dict[str, Any] = {
        "source": "sendgrid",
        "external_id": external_id(item),
        "email": email,
        "now": _event_time(item),
        "text": _text(item),
    }
    if name in SIMPLE_KINDS:
        event = events.record_event(message, SIMPLE_KINDS[name], **common)
    elif name == "bounce":
        category = bounce_category(item)
        event = events.record_event(
            message, Kind.BOUNCED, category=category, enhanced=str(item.get("status", ""))[:12], **common
        )
    elif name == "dropped":
        reason = DROP_REASONS.get(str(item.get("reason", "")).strip().lower(), "")
        event = events.record_event(message, Kind.FAILED, suppress_reason=reason, **common)
    else:
        return "ignored"
    return "recorded" if event is not None else "duplicate"


def bounce_category(item: dict[str, Any]) -> Category:
    """SendGrid's "bounce" is permanent; "blocked" is the receiver refusing us, not the address.
    A policy reason (5.7.x, a blocklist) never counts against the recipient."""
    status, reason = str(item.get("status", "")), str(item.get("reason", ""))
    category = classify_dsn_status(status, reason, action="failed")
    if category is Category.POLICY:
        return category
    if str(item.get("type", "bounce")).lower() == "blocked":
        return category if category is not Category.HARD else Category.POLICY
    return Category.HARD


def match_message(item: dict[str, Any], email: str) -> Message | None:
    """The message named by our custom args; the signature makes them trustworthy, and the
    recipient must agree so a mix-up can never suppress the wrong address."""
    message = None
    pk = str(item.get(MESSAGE_PK_ARG, "")).strip()
    if pk.isdigit():
        message = Message.objects.filter(pk=int(pk)).first()
    if message is None:
        rfc_id = normalize_message_id(str(item.get(MESSAGE_ID_ARG, "")))
        if rfc_id:
            message = Message.objects.filter(message_id=rfc_id).first()
    if message is not None and email and message.to_email.strip().lower() != email.lower():
        log.warning("SendGrid event for %s names message %s sent to someone else", email, message.pk)
        return None
    return message


def external_id(item: dict[str, Any]) -> str:
    event_id = str(item.get("sg_event_id", "")).strip()
    if event_id:
        return f"sg:{event_id}"
    # Without an event id, the event's own content identifies it.
    return "sg-sha256:" + hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()


def _event_time(item: dict[str, Any]) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(item["timestamp"]), tz=dt.UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return timezone.now()


def _text(item: dict[str, Any]) -> str:
    parts = [str(item.get(key, "")) for key in ("event", "type", "status", "reason", "response")]
    return " ".join(p for p in parts if p)[:1000]
