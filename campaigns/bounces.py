"""Bounce and complaint intake: an inbound SMTP listener on the VERP return path.

Remote MTAs send DSNs (RFC 3464) and feedback loops send ARF complaints (RFC 5965) to
the envelope sender of our mail, b-<id>-<mac>@BOUNCE_DOMAIN. The listener accepts mail
for that domain only (give feedback loops an address there too, e.g. fbl@BOUNCE_DOMAIN),
parses each report (campaigns/dsn.py), matches it to its message and records the fact
(campaigns/events.py).

Matching, most trustworthy first:
1. the VERP address the report arrived for, or the one it quotes as the original envelope
   sender (feedback loops mail a fixed address): it carries a MAC, so it cannot be forged;
2. the original Message-ID quoted in the report: random, so only someone who received
   the message knows it; when the report also quotes X-Mailops-Message, the two must agree;
3. X-Mailops-Message alone is a guessable number and never matches on its own: a forged
   report could otherwise suppress anybody's address.
The address suppressed is always the matched message's recipient, never an address
the report names.

The listener also takes unsubscribes mailed to the List-Unsubscribe mailto address,
u-<message id>-<mac>@UNSUBSCRIBE_MAILTO_DOMAIN (campaigns/unsubscribe.py), in any letter
case: the MAC must match the message's recipient, who is the address suppressed. Mail sent
before that form carries u-<signed token>@…, whose token names the address.

Processing runs in a worker thread (the ORM is synchronous) before the final reply, so a
report we failed to record gets a 451 and the remote MTA tries again later.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from django.conf import settings
from django.db import close_old_connections

from servers.outcome import Category

from . import events
from .dsn import Report, ReportRecipient, normalize_message_id, parse_report
from .headers import parse_verp
from .models import DeliveryEvent, Message
from .unsubscribe import read_mailto_address, read_token, token_from_mailto_address

log = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
MAX_REPORT_BYTES = 10 * 1024 * 1024
DELIVERED_ACTIONS = ("delivered", "relayed", "expanded")


@dataclass(frozen=True)
class Intake:
    """What one report did: `outcome` is recorded, duplicate, unmatched, ignored or not-a-report."""

    outcome: str
    kind: str = ""
    message_id: int | None = None
    detail: str = ""


def bounce_domain() -> str:
    return settings.MAILOPS["BOUNCE_DOMAIN"].strip().lower().rstrip(".")


def unsubscribe_domain() -> str:
    return settings.MAILOPS.get("UNSUBSCRIBE_MAILTO_DOMAIN", "").strip().lower().rstrip(".")


def _domain_of(address: str) -> str:
    return address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".")


def handle_mailto_unsubscribe(address: str) -> Intake:
    """An unsubscribe mailed to the List-Unsubscribe mailto (u-<id>-<mac>@UNSUBSCRIBE_MAILTO_DOMAIN).

    The MAC ties the address to one message and its recipient, so the mail's content and
    sender do not matter: whoever holds the message may unsubscribe its recipient, as with
    the one-click URL.
    """
    short = read_mailto_address(address)
    if short is not None:
        message = Message.objects.filter(pk=short.message_id).first()
        if message is None or not short.is_for(message.to_email):
            return Intake("unmatched", detail="not a valid unsubscribe address")
        return _record_mailto_unsubscribe(
            message, message.to_email, message_id=message.pk, campaign_id=message.campaign_id
        )
    token = token_from_mailto_address(address)
    claim = read_token(token) if token else None
    if claim is None:
        return Intake("unmatched", detail="not a valid unsubscribe token")
    message = Message.objects.filter(pk=claim.message_id).first() if claim.message_id is not None else None
    if message is not None and message.to_email.strip().lower() != claim.email.strip().lower():
        message = None
    return _record_mailto_unsubscribe(message, claim.email, message_id=claim.message_id, campaign_id=claim.campaign_id)


def _record_mailto_unsubscribe(
    message: Message | None, email: str, *, message_id: int | None, campaign_id: int | None
) -> Intake:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    event = events.record_event(
        message,
        Kind.UNSUBSCRIBED,
        source="mailto",
        email=email,
        external_id=f"mailto:{message_id or ''}:{digest}",
        text=f"unsubscribe mailed to the List-Unsubscribe address (campaign {campaign_id or '-'})",
    )
    return Intake("recorded" if event else "duplicate", Kind.UNSUBSCRIBED, message.pk if message else None)


def handle_report(raw: bytes, *, envelope_to: str = "") -> Intake:
    """Parse, match and record one inbound report."""
    report = parse_report(raw, envelope_to=envelope_to)
    if report is None:
        return Intake("not-a-report", detail="neither a DSN, a complaint report, nor a recognisable bounce")
    message = match_message(report)
    if message is None:
        log.info(
            "unmatched %s report for %s (Message-ID %s)", report.kind, report.envelope_to, report.original_message_id
        )
        return Intake("unmatched", detail=f"no message matches {report.envelope_to or report.original_message_id}")

    report_id = _report_id(raw)
    if report.kind == "arf":
        if not report.is_complaint:
            return Intake("ignored", message_id=message.pk, detail=f"feedback type {report.feedback_type}")
        event = events.record_event(
            message,
            Kind.COMPLAINED,
            source="arf",
            external_id=f"arf:{report_id}:{message.pk}",
            text=f"{report.feedback_type or 'abuse'} report from "
            f"{report.reporting_mta or report.user_agent or 'unknown'}",
        )
        return Intake("recorded" if event else "duplicate", Kind.COMPLAINED, message.pk)

    recipient = _recipient_for(report, message)
    if recipient is None:
        return Intake("ignored", message_id=message.pk, detail="report names no recipient")
    kind, category = _dsn_kind(recipient)
    if kind is None:
        return Intake("ignored", message_id=message.pk, detail=f"action {recipient.action!r}")
    status = recipient.status.strip()
    code = _reply_code(recipient.diagnostic_code)
    event = events.record_event(
        message,
        kind,
        source="dsn",
        external_id=f"dsn:{report_id}:{message.pk}:{recipient.action.lower()}",
        category=category,
        code=code,
        enhanced=status,
        text=_dsn_text(recipient),
    )
    return Intake("recorded" if event else "duplicate", kind, message.pk)


def match_message(report: Report) -> Message | None:
    mailops_id = report.mailops_message_id.strip()
    # The VERP address may be where the report arrived, or (feedback loops mail a fixed
    # address) quoted as the original envelope sender or Return-Path.
    for address in (report.envelope_to, report.original_mail_from, report.original_headers.get("return-path", "")):
        pk = parse_verp(address, bounce_domain=bounce_domain()) if address else None
        if pk is not None:
            return Message.objects.filter(pk=pk).first()
    original = normalize_message_id(report.original_message_id)
    if not original:
        return None
    found = Message.objects.filter(message_id=original).first()
    if found is None:
        return None
    if mailops_id and mailops_id != str(found.pk):
        log.warning(
            "report quotes Message-ID %s of message %s but X-Mailops-Message %s", original, found.pk, mailops_id
        )
        return None
    return found


def _recipient_for(report: Report, message: Message) -> ReportRecipient | None:
    if not report.recipients:
        return None
    wanted = message.to_email.strip().lower()
    for recipient in report.recipients:
        if wanted in (recipient.final_recipient.lower(), recipient.original_recipient.lower()):
            return recipient
    # The VERP address names one message, hence one recipient; a forwarder may have
    # rewritten the address the report shows.
    return report.recipients[0]


def _dsn_kind(recipient: ReportRecipient) -> tuple[str | None, Category]:
    action = recipient.action.strip().lower()
    category = recipient.category
    if action in DELIVERED_ACTIONS:
        return Kind.DELIVERED, Category.NONE
    if action == "delayed":
        return Kind.DEFERRED, Category.SOFT
    if action == "failed" or (not action and recipient.status.startswith("5")):
        return Kind.BOUNCED, category
    if not action and recipient.status.startswith("4"):
        return Kind.DEFERRED, Category.SOFT
    return None, category


def _reply_code(diagnostic: str) -> int | None:
    from servers.classify import parse_reply

    return parse_reply(diagnostic or "").code


def _dsn_text(recipient: ReportRecipient) -> str:
    parts = [recipient.status, recipient.diagnostic_code or recipient.action]
    if recipient.remote_mta:
        parts.append(f"(remote MTA {recipient.remote_mta})")
    return " ".join(p for p in parts if p)[:1000]


def _report_id(raw: bytes) -> str:
    """The report's own Message-ID, or a digest of its bytes: the same report delivered twice dedupes."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    own = normalize_message_id(str(headers.get("Message-ID", "") or ""))
    return own[:120] if own else "sha256:" + hashlib.sha256(raw).hexdigest()


# -- the listener ----------------------------------------------------------------------------


class BounceHandler:
    """aiosmtpd handler: accept RCPT only at the bounce domain, process each report before replying."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        domain = _domain_of(address)
        mailto = domain == unsubscribe_domain() and (
            read_mailto_address(address) is not None or token_from_mailto_address(address) is not None
        )
        if domain != bounce_domain() and not mailto:
            return "550 5.1.1 Not a bounce or unsubscribe address here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        loop = asyncio.get_running_loop()
        try:
            for rcpt in envelope.rcpt_tos:
                await loop.run_in_executor(None, _process, data, rcpt)
        except Exception:
            log.exception("could not record a report for %s", envelope.rcpt_tos)
            return "451 4.3.0 Could not record the report; try again later"
        return "250 OK report received"


def _process(data: bytes, rcpt: str) -> Intake:
    close_old_connections()
    try:
        if _domain_of(rcpt) == bounce_domain():
            result = handle_report(data, envelope_to=rcpt)
        else:
            result = handle_mailto_unsubscribe(rcpt)
        log.info("report for %s: %s %s %s", rcpt, result.outcome, result.kind, result.detail)
        return result
    finally:
        close_old_connections()


def make_listener(*, host: str = "127.0.0.1", port: int | None = None, **kwargs: Any) -> Controller:
    """A Controller for the bounce listener (start() / stop()); port 0 picks a free one."""
    port = settings.MAILOPS["BOUNCE_LISTENER_PORT"] if port is None else port
    if port == 0:
        # aiosmtpd's Controller connects to its own port to confirm start-up, so it needs a real number.
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    return Controller(
        BounceHandler(),
        hostname=host,
        port=port,
        data_size_limit=MAX_REPORT_BYTES,
        server_hostname=bounce_domain(),
        ready_timeout=10,
        **kwargs,
    )
