"""Periodic tasks of the campaigns app, merged into CELERY_BEAT_SCHEDULE by mailops.

The dispatcher is cheap when there is nothing to do (a lock UPDATE and a few indexed
counts), so it runs every two seconds: that is the latency between a message becoming
due (start, resume, retry time) and it being claimed.
"""

from __future__ import annotations

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "campaigns-dispatch": {
        "task": "campaigns.dispatch",
        "schedule": 2.0,
        # A backlog of stale dispatch runs is useless: the next one does their work.
        "options": {"expires": 10},
    },
}
