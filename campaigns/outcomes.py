"""Recording what happened to a batch, in bulk: message rows, events, counters, server stats.

One call records a whole batch in one transaction: the message rows with one
UPDATE … FROM (VALUES …) (campaigns/bulkwrite.py), the DeliveryEvents with one
`bulk_create`, each campaign's counters with one F() UPDATE, the server's daily
aggregates with one UPDATE, and hard bounces on the suppression list.

What each outcome becomes:

| outcome                         | message   | campaign counter | server stat               |
|---------------------------------|-----------|------------------|---------------------------|
| accepted                        | sent      | sent             | sent                      |
| deferred (4xx, timeout)         | deferred, retried with backoff | deferred | deferred (+policy_blocks for 4.7.x/421) |
| deferred for 3 days             | failed "gave up after 3 days: …" | failed | failed              |
| hard bounce (5.1.x)             | bounced, address suppressed | bounced | bounced          |
| policy block (5.7.x, blocklist) | failed; recipient NOT suppressed | failed | failed + policy_blocks |
| other permanent 5xx             | failed    | failed           | failed                    |
| unknown (reply lost after DATA) | unknown, never resent | unknown | unknown               |

Failures of the server rather than the message (connect, TLS, AUTH, 421, a SendGrid 429
rate limit) never reach this table: campaigns/sender.py stops the batch and requeues the
message and the rest with no attempt counted.

The campaign's `deferred` counter counts deferrals (attempts that were deferred), like
the server's; a message deferred twice and then sent counts in both `deferred` and `sent`.

Only rows still in `sending` are updated: a row that changed hands meanwhile (its lease
expired and another worker claimed it, or its campaign was cancelled) is left to its new
owner. The server's aggregates count every attempt regardless, since the server really
made them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from servers import stats
from servers.models import Server
from servers.outcome import Category, Outcome, Status

from . import bulkwrite, suppression
from .models import Campaign, DeliveryEvent, Message, MessageStatus, Suppression

FIRST_RETRY = dt.timedelta(minutes=5)
MAX_RETRY = dt.timedelta(hours=4)
GIVE_UP_AFTER = dt.timedelta(days=3)

_ATTEMPT_FIELDS = [
    "status", "attempts", "first_attempt_at", "next_attempt_at", "lease_expires_at", "server",
    "reply_code", "enhanced_status", "reply_text", "message_id", "sent_at",
]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One message handed to a server, and what the server said."""

    message: Message
    outcome: Outcome


@dataclass(slots=True)
class Recorded:
    """What `record` changed, by final message status (rows actually updated)."""

    statuses: Counter[str] = field(default_factory=Counter)
    suppressed_addresses: int = 0

    def __getitem__(self, status: str) -> int:
        return self.statuses[status]


def retry_delay(attempts: int, retry_after: float | None = None) -> dt.timedelta:
    """5 minutes after the first deferral, doubling each time, at most 4 hours; longer if the server asked."""
    delay = min(FIRST_RETRY * (2 ** max(0, attempts - 1)), MAX_RETRY)
    if retry_after is not None and retry_after > delay.total_seconds():
        delay = dt.timedelta(seconds=retry_after)
    return delay


def _still_ours(messages: Iterable[Message]) -> set[int]:
    """Lock the rows that are still `sending`; the rest changed hands and are not ours to write."""
    ids = [m.pk for m in messages]
    if not ids:
        return set()
    return set(
        Message.objects.select_for_update()
        .filter(pk__in=ids, status=MessageStatus.SENDING)
        .values_list("pk", flat=True)
    )


def _server_counts(outcome: Outcome, status: str) -> dict[str, int]:
    counts = {status: 1}
    if outcome.category is Category.POLICY:
        counts["policy_blocks"] = 1
    return counts


@transaction.atomic
def record(
    *,
    server: Server | None,
    day: dt.date,
    attempts: Sequence[Attempt] = (),
    requeued: Sequence[Message] = (),
    suppressed: Sequence[Message] = (),
    refused: Sequence[tuple[Message, str]] = (),
    now: dt.datetime | None = None,
) -> Recorded:
    """Record a batch: attempts made, messages put back for another server, suppressed at send
    time, and messages refused before sending (unrenderable, with the reason)."""
    now = now or timezone.now()
    ours = _still_ours([*(a.message for a in attempts), *requeued, *suppressed, *(m for m, _ in refused)])
    result = Recorded()
    updated: list[Message] = []
    events: list[DeliveryEvent] = []
    campaign_counts: dict[int, Counter[str]] = defaultdict(Counter)
    server_counts: Counter[str] = Counter()
    hard_bounces: list[tuple[str, str]] = []
    source = server.kind if server is not None else "smtp"

    for attempt in attempts:
        message, outcome = attempt.message, attempt.outcome
        status, text, event_kind = _judge(message, outcome, now)
        server_counts.update(_server_counts(outcome, status))
        if message.pk not in ours:
            continue
        message.status = status
        message.attempts += 1
        message.first_attempt_at = message.first_attempt_at or now
        message.lease_expires_at = None
        message.server = server
        message.reply_code = outcome.code
        message.enhanced_status = outcome.enhanced[:12]
        message.reply_text = text
        # sent_at may hold the sender's "handed to the server" mark; only sent mail keeps one.
        message.sent_at = now if status == MessageStatus.SENT else None
        if status == MessageStatus.DEFERRED:
            message.next_attempt_at = now + retry_delay(message.attempts, outcome.retry_after)
        updated.append(message)
        events.append(
            DeliveryEvent(
                message=message,
                server=server,
                kind=event_kind,
                created_at=now,
                code=outcome.code,
                enhanced_status=outcome.enhanced[:12],
                category=str(outcome.category),
                text=text,
                source=source,
            )
        )
        if message.campaign_id:
            campaign_counts[message.campaign_id][status] += 1
        if status == MessageStatus.BOUNCED:
            hard_bounces.append((message.to_email, outcome.summary))
        result.statuses[status] += 1

    if updated:
        bulkwrite.update_rows(Message, updated, _ATTEMPT_FIELDS, filters={"status": MessageStatus.SENDING})

    requeue_ids = [m.pk for m in requeued if m.pk in ours]
    if requeue_ids:
        # No attempt is counted: the server failed, not the message. The next dispatch routes
        # them to another server (failover).
        Message.objects.filter(pk__in=requeue_ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.QUEUED, server=None, lease_expires_at=None, next_attempt_at=now, sent_at=None
        )
        result.statuses[MessageStatus.QUEUED] += len(requeue_ids)

    suppressed_ids = [m.pk for m in suppressed if m.pk in ours]
    if suppressed_ids:
        Message.objects.filter(pk__in=suppressed_ids, status=MessageStatus.SENDING).update(
            status=MessageStatus.SUPPRESSED, lease_expires_at=None, reply_text="suppressed: checked again at send time",
            sent_at=None,  # a batch marks a few messages ahead of the one it sends
        )
        for message in suppressed:
            if message.pk in ours and message.campaign_id:
                campaign_counts[message.campaign_id][MessageStatus.SUPPRESSED] += 1
        result.statuses[MessageStatus.SUPPRESSED] += len(suppressed_ids)

    refused_rows = [(m, reason) for m, reason in refused if m.pk in ours]
    for message, reason in refused_rows:
        message.status = MessageStatus.FAILED
        message.lease_expires_at = None
        message.reply_text = f"not sent: {reason}"
        message.sent_at = None
        events.append(
            DeliveryEvent(message=message, server=None, kind=DeliveryEvent.Kind.FAILED, created_at=now,
                          category=str(Category.PERMANENT), text=message.reply_text, source="mailops")
        )
        if message.campaign_id:
            campaign_counts[message.campaign_id][MessageStatus.FAILED] += 1
        result.statuses[MessageStatus.FAILED] += 1
    if refused_rows:
        bulkwrite.update_rows(
            Message, [m for m, _ in refused_rows], ["status", "lease_expires_at", "reply_text", "sent_at"],
            filters={"status": MessageStatus.SENDING},
        )

    if events:
        DeliveryEvent.objects.bulk_create(events, batch_size=500)
    _bump_campaigns(campaign_counts)
    if server is not None and server_counts:
        stats.record(server.pk, server_counts, day=day)
    if hard_bounces:
        # One call for the whole batch (one look-up of pending mail, not one per address); each
        # address still carries the reply that condemned it, for the operator who reads the list.
        sources = {email: f"{server.name if server else ''}: {summary}" for email, summary in hard_bounces}
        result.suppressed_addresses += suppression.suppress_many(
            sources, reason=Suppression.Reason.HARD_BOUNCE, sources=sources
        )
    return result


_COUNTER_FOR_STATUS = {
    MessageStatus.SENT: "sent",
    MessageStatus.DEFERRED: "deferred",
    MessageStatus.BOUNCED: "bounced",
    MessageStatus.FAILED: "failed",
    MessageStatus.SUPPRESSED: "suppressed",
    MessageStatus.UNKNOWN: "unknown",
}


def _bump_campaigns(campaign_counts: dict[int, Counter[str]]) -> None:
    for campaign_id, counts in campaign_counts.items():
        increments = {
            _COUNTER_FOR_STATUS[status]: F(_COUNTER_FOR_STATUS[status]) + n
            for status, n in counts.items()
            if n and status in _COUNTER_FOR_STATUS
        }
        if increments:
            Campaign.objects.filter(pk=campaign_id).update(**increments)


def _judge(message: Message, outcome: Outcome, now: dt.datetime) -> tuple[str, str, str]:
    """(message status, reply text to keep, event kind) for one attempt."""
    text = outcome.summary
    if outcome.status is Status.ACCEPTED:
        return MessageStatus.SENT, text, DeliveryEvent.Kind.SENT
    if outcome.status is Status.UNKNOWN:
        return MessageStatus.UNKNOWN, text, DeliveryEvent.Kind.UNKNOWN
    if outcome.status is Status.DEFERRED:
        first = message.first_attempt_at or now
        if now - first >= GIVE_UP_AFTER:
            return MessageStatus.FAILED, f"gave up after 3 days: {text}", DeliveryEvent.Kind.FAILED
        return MessageStatus.DEFERRED, text, DeliveryEvent.Kind.DEFERRED
    if outcome.category is Category.HARD:
        return MessageStatus.BOUNCED, text, DeliveryEvent.Kind.BOUNCED
    # Policy blocks and other permanent refusals: the message failed, the recipient is not to blame.
    return MessageStatus.FAILED, text, DeliveryEvent.Kind.FAILED


def record_failed(messages: Sequence[Message], *, reason: str, server: Server | None = None) -> int:
    """Give up on messages without an attempt (e.g. every server exhausted for 3 days)."""
    ids = [m.pk for m in messages]
    with transaction.atomic():
        ours = _still_ours(messages)
        changed = Message.objects.filter(pk__in=[i for i in ids if i in ours], status=MessageStatus.SENDING).update(
            status=MessageStatus.FAILED, lease_expires_at=None, reply_text=reason
        )
        counts: dict[int, Counter[str]] = defaultdict(Counter)
        for m in messages:
            if m.pk in ours and m.campaign_id:
                counts[m.campaign_id][MessageStatus.FAILED] += 1
        _bump_campaigns(counts)
    return changed


def defer_unsent(messages: Sequence[Message], *, reason: str, retry_at: dt.datetime) -> int:
    """Put messages that no server could take back as deferred, with the reason, for the pipeline to retry.

    No attempt is counted: no server judged them. They are failed once 3 days have passed
    since they were first tried.
    """
    now = timezone.now()
    ids = [m.pk for m in messages]
    with transaction.atomic():
        ours = _still_ours(messages)
        mine = [i for i in ids if i in ours]
        expired = [
            m for m in messages if m.pk in ours and m.first_attempt_at and now - m.first_attempt_at >= GIVE_UP_AFTER
        ]
        if expired:
            record_failed(expired, reason=f"gave up after 3 days: {reason}")
            mine = [i for i in mine if i not in {m.pk for m in expired}]
        return Message.objects.filter(pk__in=mine, status=MessageStatus.SENDING).update(
            status=MessageStatus.DEFERRED,
            server=None,
            lease_expires_at=None,
            next_attempt_at=retry_at,
            reply_text=reason,
            sent_at=None,
        )


def extend_lease(messages: Iterable[Message], *, until: dt.datetime) -> int:
    """Keep a long, paced batch's remaining messages from being reclaimed as crashed."""
    ids = [m.pk for m in messages]
    if not ids:
        return 0
    return Message.objects.filter(pk__in=ids, status=MessageStatus.SENDING).update(lease_expires_at=until)
