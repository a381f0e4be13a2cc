"""The benchmark's settings: the project's own, plus django-post_office for the peer baseline.

post_office is a bench-only dependency, so it is installed here and nowhere else. Every
process the harness starts (Celery workers, dispatcher, measuring subprocesses) runs with
these settings, so the pipeline is measured with the project's settings unchanged.
"""

from __future__ import annotations

import os

from mailops.settings import *  # noqa: F401,F403
from mailops.settings import INSTALLED_APPS, VAR_DIR

INSTALLED_APPS = [*INSTALLED_APPS, "post_office"]

# post_office sends through Django's SMTP backend to EMAIL_HOST/EMAIL_PORT, which the
# harness aims at one of the sinks. Its default batch of 100 forks a new process pool every
# 100 mails; the bench gives it 1,000 per batch, which is kinder to it (BENCH_POST_OFFICE_BATCH
# changes that).
POST_OFFICE = {
    "BATCH_SIZE": int(os.environ.get("BENCH_POST_OFFICE_BATCH", "1000")),
    "THREADS_PER_PROCESS": int(os.environ.get("BENCH_POST_OFFICE_THREADS", "5")),
    "LOG_LEVEL": 2,
    "DEFAULT_PRIORITY": "medium",
}
POST_OFFICE_LOCKFILE = str(VAR_DIR / "post_office")

# The bench measures the project's settings (a prefetch multiplier of 4 by default);
# BENCH_PREFETCH overrides it to show what another window would do.
if os.environ.get("BENCH_PREFETCH"):
    CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ["BENCH_PREFETCH"])
