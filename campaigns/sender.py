"""Sending one batch of messages through one server: the heart of the pipeline and of single sends.

`send_batch` receives messages already claimed (status `sending`) with quota already
reserved for them on `day`. It

1. re-checks the suppression list for the whole batch in one query (invariant 4: a
   suppressed address is never sent to, even if it was suppressed after dispatch);
2. builds every message (campaigns/composer.py);
3. opens ONE connection to the server and sends in order, each message in its own
   pacing slot (servers/pacing.py) so min_delay holds across every worker, and each
   marked "handed to the server" (`sent_at`) in a committed write before it leaves;
4. stops at the first sign that the server, not the message, is at fault (connect,
   TLS or AUTH failure, 421, SendGrid 401/403/429/5xx): the server is marked suspect (401
   and 403 mark it down; a 429 holds it until X-RateLimit-Reset) and the unsent messages
   go back to `queued` with no attempt counted, so the next dispatch routes them to
   another server (failover);
5. records outcomes in bulk (campaigns/outcomes.py), in chunks during long paced
   batches so a crash loses little and leases stay fresh;
6. gives back the quota of every message it did not hand to the server.

The server row is re-read first, and again at every chunk: a server that was paused,
marked down or blocklisted meanwhile gets no more traffic (invariant 5).

The "handed to the server" mark is what makes a crash safe for every caller, the
pipeline's batches and single sends alike. It commits before the first byte of a message
leaves, so if the process dies before the outcome is written the dispatcher can tell a
message that may have been delivered (sent_at set: it becomes `unknown`, never resent)
from one that never left (sent_at empty: it is sent again once its lease expires).
outcomes.record then writes the real outcome (and keeps sent_at only for sent mail).
Call send_batch outside a transaction, or the mark is not durable before DATA.

The mark is written for each message on its own: a mark written ahead for several would,
after a crash, report messages that never left as `unknown` and so never send them
(invariant 2). On PostgreSQL the mark's own transaction commits asynchronously
(`synchronous_commit = off` for that statement only): it is visible at once and survives
the death of the worker, which is the crash it is for, without a disk flush per message.
Only a crash of PostgreSQL itself can forget the last fraction of a second of marks; such
a message is then sent again once its lease expires.

The suppression list is read once for the whole batch and again at every chunk, and
before each message of a paced server: an address suppressed while the batch runs is
not sent to from then on.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone

from servers import pacing, quota, state, stats
from servers.models import Server, ServerKind
from servers.outcome import Category, Outcome
from servers.transport_config import transport_config
from servers.transports.base import Transport, TransportConfig, open_transport

from . import outcomes
from .composer import Composed, compose
from .models import Message, MessageStatus
from .outcomes import Attempt
from .suppression import suppressed_among

log = logging.getLogger(__name__)

# Record outcomes at least this often during a batch (messages, seconds).
FLUSH_EVERY = 100
FLUSH_SECONDS = 20.0

TransportFactory = Callable[[TransportConfig], Transport]


@dataclass(slots=True)
class BatchResult:
    server_id: int
    day: dt.date
    # Per message pk: what the server said, for every message handed to it.
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    # Final statuses written (sent, deferred, bounced, failed, unknown, suppressed, queued).
    counts: Counter[str] = field(default_factory=Counter)
    # Not handed to the server because it failed; requeued unless the caller keeps them.
    unsent: list[Message] = field(default_factory=list)
    suppressed: list[Message] = field(default_factory=list)
    refused: list[tuple[Message, str]] = field(default_factory=list)
    # Why the server was abandoned (connect/TLS/auth failure, 421, …), if it was.
    server_failure: Outcome | None = None
    released: int = 0

    @property
    def attempted(self) -> int:
        return len(self.outcomes)

    @property
    def sent(self) -> int:
        return self.counts[MessageStatus.SENT]


def _fresh(server: Server) -> Server | None:
    """The server as it is now, or None when it must not send (paused, down, left the pool)."""
    current = Server.objects.select_related("warmup_schedule").filter(pk=server.pk).first()
    if current is None or not current.is_sendable:
        return None
    return current


def abandon_server(server: Server, failure: Outcome, *, day: dt.date) -> None:
    """React to a server failing at send time: health checks decide the rest."""
    if server.kind == ServerKind.SENDGRID and failure.code in (401, 403):
        # The key is wrong or lacks the mail.send scope: nothing will work until an operator fixes it.
        state.mark_down(server, error=f"SendGrid refused the API key: {failure.summary}")
    elif server.kind == ServerKind.SENDGRID and failure.code == 429:
        # Rate limited: nothing gets through before X-RateLimit-Reset, so the server sits out
        # until then (health probes would pass meanwhile: the limit is on sending only).
        hold = failure.retry_after if failure.retry_after is not None else state.SUSPECT_SECONDS
        state.mark_suspect(server, error=f"SendGrid rate limit, held for {hold:.0f} s: {failure.summary}", seconds=hold)
    else:
        state.mark_suspect(server, error=failure.summary)
    if failure.category is Category.POLICY:
        stats.record(server.pk, {"policy_blocks": 1}, day=day)
    log.warning("server %s abandoned for this batch: %s", server.name, failure.summary)


def send_batch(
    *,
    server: Server,
    messages: Sequence[Message],
    day: dt.date,
    composed: Sequence[Composed] | None = None,
    requeue_unsent: bool = True,
    transport_factory: TransportFactory = open_transport,
) -> BatchResult:
    """Send claimed messages through `server`; see the module docstring for the steps.

    `composed` lets a caller that tries several servers for the same messages (send_email's
    failover) build them once. With `requeue_unsent=False` the messages a failed server did
    not take stay `sending` (with no hand-over mark) and are returned in `unsent` for the
    caller to place.
    """
    result = BatchResult(server_id=server.pk, day=day)
    if composed is not None:
        messages = [c.message for c in composed]
    if not messages:
        return result

    live = _fresh(server)
    if live is None:
        result.unsent = list(messages)
        return _finish(result, server, day, attempts=[], requeue_unsent=requeue_unsent)
    server = live

    blocked = suppressed_among(m.to_email for m in messages)
    if blocked:
        result.suppressed = [m for m in messages if m.to_email.strip().lower() in blocked]
        messages = [m for m in messages if m.to_email.strip().lower() not in blocked]
    if composed is None:
        composed = compose(messages)
    else:
        composed = [c for c in composed if c.message.to_email.strip().lower() not in blocked]
    result.refused = [(c.message, c.refused) for c in composed if c.outgoing is None]
    ready = [c for c in composed if c.outgoing is not None]
    if not ready:
        return _finish(result, server, day, attempts=[], requeue_unsent=requeue_unsent)

    attempts: list[Attempt] = []
    transport = transport_factory(transport_config(server))
    try:
        failure = transport.open()
        if failure is not None:
            result.server_failure = failure
            result.unsent = [c.message for c in ready]
        else:
            attempts = _send_all(transport, server, ready, result, day=day)
    finally:
        transport.close()
    if result.server_failure is not None:
        abandon_server(server, result.server_failure, day=day)
    return _finish(result, server, day, attempts=attempts, requeue_unsent=requeue_unsent)


_MARK_SQL = "UPDATE {table} SET sent_at = %s, server_id = %s WHERE id = %s AND status = %s{extra}"
_MARK_PLAIN = _MARK_SQL.format(table=Message._meta.db_table, extra="")
# In PostgreSQL's implicit one-statement transaction, set_config(…, true) is SET LOCAL.
_MARK_ASYNC = _MARK_SQL.format(
    table=Message._meta.db_table, extra=" AND set_config('synchronous_commit', 'off', true) = 'off'"
)


def _mark_handed_over(message: Message, server: Server) -> None:
    """Write (and, outside a transaction, commit) the "handed to the server" mark.

    The server goes with it: a single send has none on its row until its outcome is
    written, and an unknown must be counted against the server that may have it."""
    standalone = connection.vendor == "postgresql" and connection.get_autocommit() and not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute(
            _MARK_ASYNC if standalone else _MARK_PLAIN,
            [connection.ops.adapt_datetimefield_value(timezone.now()), server.pk, message.pk, MessageStatus.SENDING],
        )


def _send_all(
    transport: Transport,
    server: Server,
    ready: list[Composed],
    result: BatchResult,
    *,
    day: dt.date,
) -> list[Attempt]:
    """Send in order over the open transport; returns the attempts not yet recorded."""
    pending: list[Attempt] = []
    last_flush = time.monotonic()
    lease = dt.timedelta(seconds=settings.MAILOPS["LEASE_SECONDS"])
    paced = server.min_delay_seconds > 0
    # Suppressed while this batch runs: found at a chunk boundary, or just before a paced send.
    late: set[str] = set()
    for index, item in enumerate(ready):
        assert item.outgoing is not None
        if paced:
            # One slot per message, booked just before it leaves: spacing holds across workers,
            # and a batch that stops early leaves no unused slots behind.
            pacing.wait_until(pacing.book(server, 1))
            # A paced send may follow the batch's start by minutes; an unsubscribe meanwhile counts.
            late |= suppressed_among([item.message.to_email])
        if item.message.to_email.strip().lower() in late:
            result.suppressed.append(item.message)
            continue
        # After the pacing wait, so the mark is as close to the payload as it can be.
        _mark_handed_over(item.message, server)
        outcome = transport.send(item.outgoing)
        if outcome.is_failover:
            result.server_failure = outcome
            result.unsent = [c.message for c in ready[index:]]
            break
        result.outcomes[item.message.pk] = outcome
        pending.append(Attempt(item.message, outcome))
        if len(pending) >= FLUSH_EVERY or time.monotonic() - last_flush >= FLUSH_SECONDS:
            _count(result, outcomes.record(server=server, day=day, attempts=pending))
            pending = []
            last_flush = time.monotonic()
            rest = [c.message for c in ready[index + 1 :]]
            outcomes.extend_lease(rest, until=timezone.now() + lease)
            if rest and _fresh(server) is None:
                # Paused, down or blocklisted while we were sending: not one more message.
                result.unsent = rest
                break
            late |= suppressed_among(m.to_email for m in rest)
    return pending


def _count(result: BatchResult, recorded: outcomes.Recorded) -> None:
    result.counts.update(recorded.statuses)


def _finish(
    result: BatchResult, server: Server, day: dt.date, *, attempts: list[Attempt], requeue_unsent: bool
) -> BatchResult:
    recorded = outcomes.record(
        server=server,
        day=day,
        attempts=attempts,
        requeued=result.unsent if requeue_unsent else (),
        suppressed=result.suppressed,
        refused=result.refused,
    )
    _count(result, recorded)
    if result.unsent and not requeue_unsent:
        # They stay with the caller, who tries another server: a crash before it does must
        # send them again, not count them unknown, since this server never took them.
        Message.objects.filter(pk__in=[m.pk for m in result.unsent], status=MessageStatus.SENDING).update(
            sent_at=None, server=None
        )
    # Everything the server never saw gives its reservation back, so the cap stays usable.
    not_attempted = len(result.unsent) + len(result.suppressed) + len(result.refused)
    if not_attempted:
        quota.release(server.pk, not_attempted, day=day)
        result.released = not_attempted
    return result
