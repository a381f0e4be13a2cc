"""The pipeline: a campaign through the real path, from `campaign_start` to the last outcome recorded.

campaign_start (set-based message creation) → dispatcher (claims per server, rotation over
the five sinks, quota reservations) → send_batch Celery tasks on real worker processes
(one connection per batch) → outcomes recorded in bulk. The clock starts just before
campaign_start and stops at the latest DeliveryEvent the campaign's messages got.

Afterwards the harness checks the books: every recipient is `sent` exactly once in the
database, and the sinks received exactly as many messages as the campaign sent.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from .environment import BenchEnv
from .fixtures import make_campaign, make_list, reset_quota
from .sinks import SinkFleet
from .workers import Workers


def _cpu_of(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _busy(before: Any, after: Any) -> float:
    """Share of all cores busy between two psutil.cpu_times() readings, whoever used them."""
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return round(100 * (1 - idle / total), 1) if total > 0 else 0.0


def run(
    *,
    env: BenchEnv,
    fleet: SinkFleet,
    recipients: int,
    concurrency: int,
    dispatch_interval: float,
    offset: int,
    label: str,
) -> dict[str, Any]:
    from django.conf import settings
    from django.db.models import Max

    from campaigns.models import Campaign, DeliveryEvent
    from campaigns.services import campaign_start

    reset_quota()
    prospect_list = make_list(f"bench {label}", recipients, offset=offset)
    campaign = make_campaign(prospect_list, name=f"bench {label}")
    workers = Workers(
        env=env, concurrency=concurrency, dispatch_interval=dispatch_interval, log_dir=env.work / "logs", name=label
    ).start()
    try:
        before = fleet.total()
        cpu_before = workers.cpu_seconds()
        sinks_before = _cpu_of(fleet.pids())
        machine_before = psutil.cpu_times()
        started = time.time()
        campaign_start(campaign=campaign)
        created = time.time()
        deadline = time.monotonic() + 60 + recipients / 300
        finished = 0
        total = recipients
        while time.monotonic() < deadline:
            row = Campaign.objects.filter(pk=campaign.pk).values(
                "total", "sent", "bounced", "failed", "suppressed", "unknown"
            ).get()
            total = row["total"]
            finished = row["sent"] + row["bounced"] + row["failed"] + row["suppressed"] + row["unknown"]
            if finished >= total:
                break
            if not workers.alive():
                raise RuntimeError("a worker or the dispatcher died; see bench/work/*/logs")
            time.sleep(0.2)
        polled = time.time()
        cpu_used = workers.cpu_seconds() - cpu_before
        sinks_after = _cpu_of(fleet.pids())
        machine_after = psutil.cpu_times()
        peaks = workers.record_peaks()
    finally:
        workers.stop()
    last = DeliveryEvent.objects.filter(message__campaign_id=campaign.pk).aggregate(last=Max("created_at"))["last"]
    ended = last.timestamp() if last is not None else polled
    campaign.refresh_from_db()
    received = fleet.total() - before
    elapsed = ended - started
    pool_peaks = [v for k, v in peaks.items() if k.startswith("worker_") and k != "worker_main"]
    result: dict[str, Any] = {
        "recipients": recipients,
        "complete": finished >= total,
        "sent": campaign.sent,
        "deferred": campaign.deferred,
        "failed": campaign.failed,
        "unknown": campaign.unknown,
        "received_by_sinks": received,
        "duplicates": max(0, received - campaign.sent),
        "seconds": round(elapsed, 2),
        "campaign_start_seconds": round(created - started, 2),
        "msgs_per_s": round(campaign.sent / elapsed) if elapsed > 0 else 0,
        # CPU our processes spent per message (workers and dispatcher; not the database or the sinks):
        # unlike msg/s, it hardly moves when something else shares the machine.
        "cpu_ms_per_msg": round(cpu_used * 1000 / campaign.sent, 2) if campaign.sent else None,
        "machine_busy_pct": _busy(machine_before, machine_after),
        # The sinks' share, to show they are far from the limit. (The database's is not reported:
        # PostgreSQL backends come and go with connections, so a sum over processes would lie.)
        "sinks_cpu_ms_per_msg": round((sinks_after - sinks_before) * 1000 / campaign.sent, 2) if campaign.sent else None,
        "worker_processes": concurrency,
        "worker_pool": "prefork",
        "dispatch_interval_s": dispatch_interval,
        "batch_size": settings.MAILOPS["BATCH_SIZE"],
        "prefetch_multiplier": settings.CELERY_WORKER_PREFETCH_MULTIPLIER,
        "worker_peak_rss_mb": round(max(pool_peaks), 1) if pool_peaks else None,
        "worker_main_peak_rss_mb": round(peaks.get("worker_main", 0.0), 1),
        "dispatcher_peak_rss_mb": round(peaks.get("dispatcher", 0.0), 1),
    }
    if not result["complete"]:
        result["error"] = f"timed out with {finished:,} of {total:,} outcomes recorded"
    elif received != campaign.sent:
        result["error"] = f"the sinks received {received:,} messages for {campaign.sent:,} sent"
    return result
