"""Asynchronous delivery facts: what DSNs, complaint reports and SendGrid's webhook tell us
after a relay accepted a message.

`record_event` is the one door for all of them. In one transaction it appends the
DeliveryEvent (idempotent on `external_id`: a report seen twice changes nothing the
second time), suppresses the address when the fact calls for it, moves the message's
status where appropriate with a conditional UPDATE (so its campaign counters move by
exactly one), and updates the server's daily aggregates on the day the message was sent.

| kind         | message status               | server stats (day of sending)            | suppression |
|--------------|------------------------------|------------------------------------------|-------------|
| delivered    | unknown → sent               | delivered (+ sent, − unknown if it was unknown) | –    |
| deferred     | –                            | deferred                                  | –          |
| bounced hard | sent/unknown/sending → bounced | bounced, returned (unless it was unknown) | hard_bounce |
| bounced else | sent/unknown/sending → failed  | failed, returned (+ policy_blocks)        | –          |
| failed       | sent/unknown/sending → failed  | failed, returned                          | when given |
| complained   | –                            | complained (once per message)             | complaint  |
| unsubscribed | –                            | –                                         | unsubscribe |

Stats only move when the message's status actually changes (or, for delivered,
deferred and complained, once per event), so a synchronous bounce followed by a DSN
for the same message is not counted twice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from servers import stats
from servers.daytime import sending_day
from servers.models import Server, ServerDailyStat
from servers.outcome import Category

from . import suppression
from .models import Campaign, DeliveryEvent, Message, MessageStatus, Suppression

log = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
# Statuses a late report may still change: the relay took the message (or may have). A
# message is still "sending" when its report overtakes the end of its batch (a DSN can
# come back within seconds while a paced batch runs for minutes); the batch then finds
# the row changed and leaves it, while still counting the attempt in the server's stats.
SETTLED_BY_REPORTS = (MessageStatus.SENT, MessageStatus.UNKNOWN, MessageStatus.SENDING)


def record_event(
    message: Message | None,
    kind: str,
    *,
    source: str,
    external_id: str | None = None,
    email: str = "",
    category: Category | str = "",
    code: int | None = None,
    enhanced: str = "",
    text: str = "",
    suppress_reason: str = "",
    server: Server | None = None,
    now: dt.datetime | None = None,
) -> DeliveryEvent | None:
    """Record one asynchronous fact; None when `external_id` was already recorded.

    `email` is the address the fact is about (the message's recipient when a message is
    given). `category` is the outcome category of a bounce (Category.HARD suppresses).
    `suppress_reason` suppresses for kinds that do not imply a reason (SendGrid drops).
    """
    if kind not in Kind.values:
        raise ValueError(f"unknown event kind {kind!r}; expected one of {Kind.values}")
    now = now or timezone.now()
    category = Category(category) if category else Category.NONE
    address = message.to_email if message is not None else email
    server_id = message.server_id if message is not None and message.server_id else (server.pk if server else None)

    with transaction.atomic():
        try:
            with transaction.atomic():
                event = DeliveryEvent.objects.create(
                    message=message,
                    server_id=server_id,
                    kind=kind,
                    created_at=now,
                    code=code,
                    enhanced_status=(enhanced or "")[:12],
                    category=category.value,
                    text=text,
                    source=source[:20],
                    external_id=external_id[:200] if external_id else None,
                )
        except IntegrityError:
            return None

        counts: Counter[str] = Counter()
        if kind == Kind.DELIVERED:
            counts["delivered"] += 1
            if message is not None and _move(message, MessageStatus.UNKNOWN, MessageStatus.SENT, now=now):
                counts.update({"sent": 1, "unknown": -1})
        elif kind == Kind.DEFERRED:
            counts["deferred"] += 1
        elif kind in (Kind.BOUNCED, Kind.FAILED):
            hard = kind == Kind.BOUNCED and category is Category.HARD
            if hard:
                _suppress(address, Suppression.Reason.HARD_BOUNCE, source)
            elif suppress_reason:
                _suppress(address, suppress_reason, source)
            if message is not None:
                was = _move_settled(message, MessageStatus.BOUNCED if hard else MessageStatus.FAILED, text, now=now)
                if was is not None:
                    counts["bounced" if hard else "failed"] += 1
                    if was == MessageStatus.UNKNOWN:
                        counts["unknown"] -= 1
                    else:
                        counts["returned"] += 1
                    if category is Category.POLICY:
                        counts["policy_blocks"] += 1
        elif kind == Kind.COMPLAINED:
            _suppress(address, Suppression.Reason.COMPLAINT, source)
            first = message is None or not DeliveryEvent.objects.filter(
                message=message, kind=Kind.COMPLAINED
            ).exclude(pk=event.pk).exists()
            if first:
                counts["complained"] += 1
        elif kind == Kind.UNSUBSCRIBED:
            _suppress(address, Suppression.Reason.UNSUBSCRIBE, source)

        if server_id is not None and counts:
            sent_at = message.sent_at if message is not None else None
            _count(server_id, counts, day=sending_day(sent_at or now))
    return event


def _suppress(address: str, reason: str, source: str) -> None:
    if address and "@" in address:
        suppression.suppress(address, reason=reason, source=source)


def _move(message: Message, from_status: str, to_status: str, *, now: dt.datetime, text: str = "") -> bool:
    changes: dict[str, object] = {"status": to_status}
    if text:
        changes["reply_text"] = text
    if to_status == MessageStatus.SENT and message.sent_at is None:
        changes["sent_at"] = now
    if not Message.objects.filter(pk=message.pk, status=from_status).update(**changes):
        return False
    for name, value in changes.items():
        setattr(message, name, value)
    if message.campaign_id:
        changes = {_counter(to_status): F(_counter(to_status)) + 1}
        if from_status != MessageStatus.SENDING:  # "sending" has no counter of its own
            changes[_counter(from_status)] = F(_counter(from_status)) - 1
        Campaign.objects.filter(pk=message.campaign_id).update(**changes)
    return True


def _move_settled(message: Message, to_status: str, text: str, *, now: dt.datetime) -> str | None:
    """Move a sent or unknown message to `to_status`; the status it had, or None if it was neither."""
    for from_status in SETTLED_BY_REPORTS:
        if _move(message, from_status, to_status, now=now, text=text):
            return from_status
    return None


def _counter(status: str) -> str:
    # Campaign counters are named after the final statuses they count.
    return {MessageStatus.SENT: "sent", MessageStatus.UNKNOWN: "unknown", MessageStatus.BOUNCED: "bounced",
            MessageStatus.FAILED: "failed"}[status]


def _count(server_id: int, counts: Counter[str], *, day: dt.date) -> None:
    """Add to the server's aggregates; decrements (a resolved unknown) never go below zero."""
    increments = {name: n for name, n in counts.items() if n > 0}
    if increments:
        stats.record(server_id, increments, day=day)
    row = ServerDailyStat.objects.filter(server_id=server_id, day=day)
    for name, n in counts.items():
        if n < 0:
            row.filter(**{f"{name}__gte": -n}).update(**{name: F(name) + n})
