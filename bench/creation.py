"""Campaign creation: `campaign_start` on a large list, the set-based INSERT … SELECT timed alone.

A list of 1,000,000 prospects (100,000 in quick mode) is written straight into the table,
a few of them on the suppression list; the clock covers `campaign_start` only: the status
flip, one INSERT … SELECT with regions and the suppression join, and the counters, in one
transaction. No worker runs, so nothing is sent; the campaign is cancelled and its rows
deleted afterwards so that they weigh on no later measurement.
"""

from __future__ import annotations

import time
from typing import Any

OFFSET = 50_000_000  # recipients no other measurement uses
SUPPRESSED_EVERY = 1_000


def measure(*, recipients: int) -> dict[str, Any]:
    from django.db import connection

    from campaigns.models import Campaign, Message, MessageStatus, Prospect, Suppression
    from campaigns.services import campaign_cancel, campaign_start

    from .fixtures import make_campaign, make_list, recipient

    seeded = time.perf_counter()
    prospect_list = make_list("bench creation", recipients, offset=OFFSET)
    Suppression.objects.bulk_create(
        [Suppression(email=recipient(OFFSET + i)[0], reason="manual", source="bench")
         for i in range(0, recipients, SUPPRESSED_EVERY)],
        ignore_conflicts=True,
    )
    campaign = make_campaign(prospect_list, name="bench creation")
    seed_seconds = time.perf_counter() - seeded
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # as autovacuum would have by the time an operator clicks start

    started = time.perf_counter()
    campaign = campaign_start(campaign=campaign)
    elapsed = time.perf_counter() - started

    queued = Message.objects.filter(campaign_id=campaign.pk, status=MessageStatus.QUEUED).count()
    result: dict[str, Any] = {
        "recipients": recipients,
        "messages": campaign.total,
        "queued": queued,
        "suppressed": campaign.suppressed,
        "seconds": round(elapsed, 2),
        "messages_per_s": round(campaign.total / elapsed) if elapsed else 0,
        "seed_seconds": round(seed_seconds, 1),
    }
    expected_suppressed = len(range(0, recipients, SUPPRESSED_EVERY))
    if campaign.total != recipients or campaign.suppressed != expected_suppressed:
        result["error"] = (f"{campaign.total:,} messages ({campaign.suppressed:,} suppressed) for {recipients:,} "
                           f"recipients ({expected_suppressed:,} suppressed)")

    cleaned = time.perf_counter()
    campaign_cancel(campaign=campaign)
    # Raw deletes: nothing was sent, so no event or stat refers to these rows, and the ORM's
    # cascade collector would fetch a million ids first.
    Message.objects.filter(campaign_id=campaign.pk)._raw_delete(connection.alias)
    Campaign.objects.filter(pk=campaign.pk).delete()
    Prospect.objects.filter(prospect_list_id=prospect_list.pk)._raw_delete(connection.alias)
    Suppression.objects.filter(source="bench").delete()
    result["cleanup_seconds"] = round(time.perf_counter() - cleaned, 1)
    return result
