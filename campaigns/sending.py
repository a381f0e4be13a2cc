"""`send_email`: one message, sent now, through the same rotation, quota, transports and
failover as the pipeline. It mirrors the seed's `sendEmail` and its result shape.

Every single send is a Message row, created `sending` with a lease, so nothing is lost
even if this process dies mid-call: the pipeline reclaims it once the lease expires.
A server that fails (connect, TLS, AUTH, 421) is marked suspect and the next eligible
server is tried in the same call. When none is left the message is deferred with the
reason, and the pipeline's retry sends it later.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from mailops.errors import DomainError
from servers import quota
from servers.daytime import next_day_start, sending_day
from servers.models import Configuration
from servers.outcome import Outcome, Status
from servers.rotation import Pool, Slot, load_pool
from servers.routing import region_for

from . import outcomes
from .composer import Composed, compile_payload, compose
from .headers import HeaderInjection, InvalidAddress, check_header_name, check_header_value
from .models import Message, MessageStatus
from .rendering import InvalidMessage
from .sender import send_batch
from .suppression import reason_for

# When every server failed for a reason other than its cap, try again this soon.
RETRY_AFTER_TROUBLE = dt.timedelta(minutes=5)


@dataclass(slots=True)
class Tried:
    server: str
    reason: str


@dataclass(slots=True)
class SendReport:
    """What happened and why: the seed's response plus the decisions behind it (for sendtest)."""

    response: dict[str, Any]
    message: Message
    strategy: str = ""
    region: str = ""
    slot: Slot | None = None
    quota_left: int | None = None
    quota_cap: int | None = None
    outcome: Outcome | None = None
    tried: list[Tried] = field(default_factory=list)


def _address(value: str, *, field_name: str, what: str) -> tuple[str, str]:
    """(display name, normalised address) after email-validator's syntax check."""
    if not isinstance(value, str) or not value.strip():
        raise DomainError(f"{what} is required", field=field_name)
    _check(field_name, value)
    name, addr = parseaddr(value)
    if not addr or "@" not in addr:
        raise DomainError(f"{what} {value!r} is not an email address; expected name@example.com", field=field_name)
    try:
        normalized = validate_email(addr, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise DomainError(f"{what} {addr!r} is not valid: {exc}", field=field_name) from None
    return name.strip(), normalized


def _check(field_name: str, value: str) -> None:
    try:
        check_header_value(field_name, value)
    except HeaderInjection as exc:
        raise DomainError(str(exc), field=field_name) from None


def validate_request(
    *,
    to: str,
    subject: str,
    html: str,
    text: str,
    from_: str | None,
    reply_to: str | None,
    headers: Mapping[str, str] | None,
    from_name: str = "",
) -> dict[str, Any]:
    """The payload to store on the Message, or DomainError naming the bad field."""
    to_name, to_email = _address(to, field_name="to", what="recipient")
    if not isinstance(subject, str) or not subject.strip():
        raise DomainError("subject is required", field="subject")
    _check("subject", subject)
    if not (html or "").strip() and not (text or "").strip():
        raise DomainError("write an html body, a text body, or both", field="html")
    if from_name:
        _check("from", from_name)
    if from_:
        parsed_name, from_email = _address(from_, field_name="from", what="sender")
        from_name = from_name or parsed_name
    else:
        from_email = settings.DEFAULT_FROM_EMAIL
    reply = _address(reply_to, field_name="replyTo", what="reply-to address")[1] if reply_to else ""
    clean_headers: dict[str, str] = {}
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise DomainError("headers must map header names to text values", field="headers")
        try:
            check_header_name(name)
            check_header_value(name, value)
        except HeaderInjection as exc:
            raise DomainError(str(exc), field="headers") from None
        clean_headers[name] = value
    payload = {
        "subject": subject,
        "html": html or "",
        "text": text or "",
        "from_email": from_email,
        "from_name": from_name,
        "reply_to": reply,
        "headers": clean_headers,
        "to_name": to_name,
        "to_email": to_email,
    }
    try:
        compile_payload(payload)
    except (InvalidMessage, HeaderInjection, InvalidAddress) as exc:
        field_name = "headers" if "header" in str(exc).lower() else "from"
        raise DomainError(str(exc), field=field_name) from None
    return payload


def send_email(
    *,
    to: str,
    subject: str,
    html: str = "",
    text: str = "",
    from_: str | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    user: Any = None,
    from_name: str = "",
) -> dict[str, Any]:
    """Send one message now. Returns `{"success": True, "server", "messageId", "ipAddress"}` or
    `{"success": False, "error", "retryAt"}`; raises DomainError for bad input or a suppressed recipient.

    `from_` may be "Name <address>"; `from_name` sets the display name when the address is bare."""
    return send_email_report(
        to=to, subject=subject, html=html, text=text, from_=from_, reply_to=reply_to, headers=headers, user=user,
        from_name=from_name,
    ).response


def send_email_report(
    *,
    to: str,
    subject: str,
    html: str = "",
    text: str = "",
    from_: str | None = None,
    reply_to: str | None = None,
    headers: Mapping[str, str] | None = None,
    user: Any = None,
    rng: random.Random | None = None,
    from_name: str = "",
) -> SendReport:
    """send_email, with the decisions behind the result."""
    payload = validate_request(
        to=to, subject=subject, html=html, text=text, from_=from_, reply_to=reply_to, headers=headers,
        from_name=from_name,
    )
    to_email = payload.pop("to_email")
    to_name = payload.pop("to_name")
    suppressed = reason_for(to_email)
    if suppressed is not None:
        raise DomainError(
            f"{to_email} is on the suppression list ({suppressed.get_reason_display().lower()}"
            f"{', ' + suppressed.source if suppressed.source else ''}); it is never sent to",
            field="to",
            extra={"reason": suppressed.reason},
        )
    if user is not None and getattr(user, "is_authenticated", False):
        payload["requested_by"] = user.get_username()

    config = Configuration.objects.filter(is_active=True).first()
    region = region_for(to_email, config.routing_rules if config else {})
    now = timezone.now()
    day = sending_day()
    # One commit for the row, its Message-ID and the pool snapshot instead of one each: on
    # PostgreSQL every commit waits for a disk flush, which was most of a single send's time.
    with transaction.atomic():
        message = Message.objects.create(
            to_email=to_email,
            to_name=to_name,
            region=region,
            status=MessageStatus.SENDING,
            next_attempt_at=now,
            lease_expires_at=now + dt.timedelta(seconds=settings.MAILOPS["LEASE_SECONDS"]),
            payload=payload,
        )
        composed = compose([message])[0]
        # Last, so the shared round-robin cursor's and the quota's rows are locked only until
        # the commit just after, whose disk flush the first reservation shares.
        pool = load_pool(config=config, day=day, rng=rng)
        report = SendReport(response={}, message=message, strategy=pool.strategy, region=region)
        slot = _reserve_next(pool, report, day=day) if composed.outgoing is not None else None
    if composed.outgoing is None:
        outcomes.record(server=None, day=day, refused=[(message, composed.refused)])
        report.response = {"success": False, "error": composed.refused, "retryAt": None}
        return report
    return _deliver(report, pool, composed, slot, day=day)


def _reserve_next(pool: Pool, report: SendReport, *, day: dt.date) -> Slot | None:
    """The next server to try, with one send reserved on it; None when none is left."""
    while (slot := pool.pick(report.region)) is not None:
        assert slot.server is not None
        if quota.reserve(slot.server, 1, day=day):
            return slot
        # The snapshot thought it had room; the authoritative counter says no.
        report.tried.append(Tried(slot.name, "daily cap reached"))
        pool.exclude(slot.id)
    return None


def _deliver(report: SendReport, pool: Pool, composed: Composed, slot: Slot | None, *, day: dt.date) -> SendReport:
    message = composed.message
    capped_only = True  # until a server fails for another reason than its cap
    while slot is not None:
        server = slot.server
        assert server is not None
        result = send_batch(server=server, messages=[message], composed=[composed], day=day, requeue_unsent=False)
        outcome = result.outcomes.get(message.pk)
        if outcome is not None:
            report.slot = slot
            report.outcome = outcome
            used = quota.used_today([server.pk], day).get(server.pk)
            if used is not None:
                report.quota_left, report.quota_cap = used[1] - used[0], used[1]
            message.refresh_from_db()
            report.response = _response(message, slot, outcome)
            return report
        if result.suppressed:
            report.response = {"success": False, "error": f"{message.to_email} was suppressed meanwhile; not sent", "retryAt": None}
            return report
        if result.refused:
            report.response = {"success": False, "error": result.refused[0][1], "retryAt": None}
            return report
        reason = result.server_failure.summary if result.server_failure else "the server left the pool"
        report.tried.append(Tried(slot.name, reason))
        capped_only = False
        pool.exclude(slot.id)
        slot = _reserve_next(pool, report, day=day)

    now = timezone.now()
    retry_at = next_day_start(now) if capped_only else min(next_day_start(now), now + RETRY_AFTER_TROUBLE)
    reason = _exhausted_reason(report, pool)
    outcomes.defer_unsent([message], reason=reason, retry_at=retry_at)
    message.refresh_from_db()
    report.response = {
        "success": False,
        "error": message.reply_text or reason,
        "retryAt": message.next_attempt_at.isoformat() if message.status == MessageStatus.DEFERRED else None,
    }
    return report


def _exhausted_reason(report: SendReport, pool: Pool) -> str:
    where = f" for region {report.region}" if report.region and pool.strict_routing else ""
    if not report.tried:
        return f"no eligible server has capacity left{where}; queued for a retry"
    tried = "; ".join(f"{t.server}: {t.reason}" for t in report.tried)
    return f"every eligible server failed{where} ({tried}); queued for a retry"


def _response(message: Message, slot: Slot, outcome: Outcome) -> dict[str, Any]:
    if outcome.status is Status.ACCEPTED:
        return {
            "success": True,
            "server": slot.name,
            "messageId": message.message_id,
            "ipAddress": slot.ip_address or (slot.server.display_ip if slot.server else ""),
        }
    if outcome.status is Status.UNKNOWN:
        error = (
            f"{slot.name} lost its reply after the message was sent ({outcome.summary}); "
            "it may have been delivered and will not be resent"
        )
        return {"success": False, "error": error, "retryAt": None, "server": slot.name, "messageId": message.message_id}
    retry_at = message.next_attempt_at.isoformat() if message.status == MessageStatus.DEFERRED else None
    return {"success": False, "error": message.reply_text or outcome.summary, "retryAt": retry_at}
