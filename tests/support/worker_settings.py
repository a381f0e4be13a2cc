"""Settings for the Celery worker that pipeline tests start (tests/support/celery_worker.py).

The project's settings, plus the overrides a test asks for through the environment:
MAILOPS_TEST_OVERRIDES holds JSON merged into settings.MAILOPS, and the broker polls
often so a test does not wait a second for every task.
"""

from __future__ import annotations

import json
import os

from mailops.settings import *  # noqa: F401,F403
from mailops.settings import CELERY_BROKER_TRANSPORT_OPTIONS, MAILOPS

MAILOPS = {**MAILOPS, **json.loads(os.environ.get("MAILOPS_TEST_OVERRIDES", "{}"))}
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "polling_interval": 0.05}

# A worker resolves no URL (unsubscribe links are built from PUBLIC_BASE_URL), so its
# start-up system checks need not import every view of the project.
ROOT_URLCONF = "tests.support.worker_urls"
