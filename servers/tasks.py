"""Celery beat tasks for monitoring: thin wrappers around plain functions.

The tasks run more often than their intervals on purpose: each sweep checks only what
is due under the active configuration (health_check_interval_seconds,
blocklist_interval_seconds), so an operator's change of interval applies without
restarting beat.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

# Merged into CELERY_BEAT_SCHEDULE by the project settings.
BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "health-sweep": {"task": "servers.tasks.health_sweep", "schedule": 60.0},
    "blocklist-sweep": {"task": "servers.tasks.blocklist_sweep", "schedule": 300.0},
    "reputation": {"task": "servers.tasks.reputation_recompute", "schedule": 900.0},
    "alert-digest": {"task": "servers.tasks.alert_digest", "schedule": 3600.0},
}


@shared_task(name="servers.tasks.health_sweep", ignore_result=True)
def health_sweep() -> dict[str, int]:
    from . import health

    outcomes = health.sweep()
    return {
        "checked": len(outcomes),
        "failed": sum(1 for o in outcomes if not o.check.ok),
        "down": sum(1 for o in outcomes if o.transition == "down"),
        "up": sum(1 for o in outcomes if o.transition == "up"),
    }


@shared_task(name="servers.tasks.blocklist_sweep", ignore_result=True)
def blocklist_sweep() -> dict[str, int]:
    from . import blocklist

    sweeps = blocklist.sweep()
    blocklist.check_domain()
    return {
        "checked": len(sweeps),
        "listed": sum(1 for s in sweeps if s.listed),
        "paused": sum(1 for s in sweeps if s.action == "paused"),
        "resumed": sum(1 for s in sweeps if s.action == "resumed"),
    }


@shared_task(name="servers.tasks.reputation_recompute", ignore_result=True)
def reputation_recompute() -> dict[str, float]:
    from . import reputation

    return {str(pk): score for pk, score in reputation.recompute().items()}


@shared_task(name="servers.tasks.alert_digest", ignore_result=True)
def alert_digest() -> int:
    from . import alerts

    return alerts.send_digest()
