"""The suppression list: addresses that are never sent to again, whatever their list or campaign.

Addresses are compared lower-cased. Suppressing is idempotent (the first reason is
kept) and takes effect everywhere at once: queued and deferred messages to the address
are marked suppressed in the same transaction, and messages already claimed by a
sender are caught by the send-time re-check (campaigns/sender.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from django.db import transaction
from django.db.models import Count, F, QuerySet
from django.db.models.functions import Lower
from django.utils import timezone

from .csvio import ImportRejected, ProspectRow, RowError, open_prospect_reader, safe_cell
from .models import Campaign, Message, MessageStatus, Suppression

Reason = Suppression.Reason
# IN lists stay well under SQLite's bound-parameter limit.
CHUNK = 500


def normalize(email: str) -> str:
    return email.strip().lower()


def is_suppressed(email: str) -> bool:
    return Suppression.objects.filter(email=normalize(email)).exists()


def reason_for(email: str) -> Suppression | None:
    return Suppression.objects.filter(email=normalize(email)).first()


def suppressed_among(emails: Iterable[str]) -> set[str]:
    """The lower-cased addresses among `emails` that are suppressed, in one query per 500."""
    wanted = sorted({normalize(e) for e in emails if e})
    found: set[str] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        found.update(Suppression.objects.filter(email__in=chunk).values_list("email", flat=True))
    return found


def suppress(email: str, *, reason: str, source: str = "") -> bool:
    """Suppress one address; True when it was not suppressed before."""
    return suppress_many([email], reason=reason, source=source) == 1


@transaction.atomic
def suppress_many(
    emails: Iterable[str], *, reason: str, source: str = "", sources: Mapping[str, str] | None = None
) -> int:
    """Suppress these addresses and cancel their pending messages; returns how many were new.

    `sources` gives an address its own source (a batch's hard bounces each keep their reply);
    the others get `source`.
    """
    if reason not in Reason.values:
        raise ValueError(f"unknown suppression reason {reason!r}; expected one of {Reason.values}")
    addresses = sorted({normalize(e) for e in emails if e and "@" in e})
    if not addresses:
        return 0
    own: dict[str, str] = {}
    for email, text in (sources or {}).items():
        own.setdefault(normalize(email), text)
    now = timezone.now()
    before = len(suppressed_among(addresses))
    Suppression.objects.bulk_create(
        [Suppression(email=a, reason=reason, source=own.get(a, source)[:200], created_at=now) for a in addresses],
        ignore_conflicts=True,
        batch_size=CHUNK,
    )
    after = len(suppressed_among(addresses))
    for start in range(0, len(addresses), CHUNK):
        cancel_pending(addresses[start : start + CHUNK], reason=f"suppressed ({reason})")
    return after - before


def pending_to(addresses: list[str]) -> QuerySet[Message]:
    """Queued and deferred messages to these (lower-cased) addresses, found through the
    message_address index on LOWER(to_email)."""
    return Message.objects.alias(address=Lower("to_email")).filter(
        address__in=addresses, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]
    )


def cancel_pending(addresses: list[str], *, reason: str) -> int:
    """Mark queued and deferred messages to these (lower-cased) addresses suppressed.

    The rows are locked first so a dispatcher claiming with skip_locked passes them by,
    and the campaign counters move by exactly the rows that changed.
    """
    rows = list(pending_to(addresses).select_for_update().values_list("pk", "campaign_id"))
    if not rows:
        return 0
    ids = [pk for pk, _ in rows]
    changed = Message.objects.filter(
        pk__in=ids, status__in=[MessageStatus.QUEUED, MessageStatus.DEFERRED]
    ).update(status=MessageStatus.SUPPRESSED, reply_text=reason, lease_expires_at=None)
    if changed:
        per_campaign = (
            Message.objects.filter(pk__in=ids, status=MessageStatus.SUPPRESSED, campaign__isnull=False)
            .values("campaign_id")
            .annotate(n=Count("pk"))
        )
        for row in per_campaign:
            Campaign.objects.filter(pk=row["campaign_id"]).update(suppressed=F("suppressed") + row["n"])
    return changed


def unsuppress(email: str) -> bool:
    """Remove an address (an operator's correction). Messages already marked suppressed stay so."""
    deleted, _ = Suppression.objects.filter(email=normalize(email)).delete()
    return bool(deleted)


@dataclass
class ImportSummary:
    added: int = 0
    already: int = 0
    errors: list[RowError] = field(default_factory=list)


def import_csv(binary_file: IO[bytes], *, reason: str = Reason.MANUAL, source: str = "csv import") -> ImportSummary:
    """Suppress every address in a CSV with an email column; a `reason` column may name a reason per row.

    Raises csvio.ImportRejected when the file as a whole is unusable.
    """
    reader = open_prospect_reader(binary_file, max_bytes=None)
    summary = ImportSummary()
    by_reason: dict[str, list[str]] = {}

    def flush() -> None:
        for row_reason, addresses in by_reason.items():
            added = suppress_many(addresses, reason=row_reason, source=source)
            summary.added += added
            summary.already += len(set(map(normalize, addresses))) - added
        by_reason.clear()

    pending = 0
    for item in reader:
        if isinstance(item, RowError):
            summary.errors.append(item)
            continue
        assert isinstance(item, ProspectRow)
        row_reason = (item.custom.get("reason") or "").strip().lower() or reason
        if row_reason not in Reason.values:
            summary.errors.append(
                RowError(item.line, f"unknown reason {row_reason!r}; use one of {', '.join(Reason.values)}", item.email)
            )
            continue
        by_reason.setdefault(row_reason, []).append(item.email)
        pending += 1
        if pending >= CHUNK:
            flush()
            pending = 0
    flush()
    return summary


EXPORT_COLUMNS = ("email", "reason", "source", "created_at")


def export_csv(fileobj: IO[str], *, since: dt.datetime | None = None, bom: bool = True) -> int:
    """Write the suppression list as CSV (formula-safe cells); returns rows written."""
    import csv

    if bom:
        fileobj.write("\ufeff")
    writer = csv.writer(fileobj, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    rows = Suppression.objects.order_by("email")
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    count = 0
    for email, reason, source, created_at in rows.values_list(*EXPORT_COLUMNS).iterator(chunk_size=2000):
        writer.writerow([safe_cell(email), reason, safe_cell(source), created_at.isoformat()])
        count += 1
    return count


__all__ = [
    "ImportRejected",
    "ImportSummary",
    "cancel_pending",
    "export_csv",
    "import_csv",
    "is_suppressed",
    "normalize",
    "pending_to",
    "reason_for",
    "suppress",
    "suppress_many",
    "suppressed_among",
    "unsuppress",
]
