"""A real Celery worker subprocess for pipeline tests, on the test database.

    from tests.support.celery_worker import celery_worker  # noqa: F401

    @pytest.mark.django_db(transaction=True)
    def test_it_sends(celery_worker):
        ...                      # tasks queued by the test process run in the worker
        celery_worker.kill()     # SIGKILL the worker and its pool, mid-batch
        celery_worker.start()    # a fresh worker on the same broker and database

The worker runs `celery -A mailops worker --pool=prefork -c 2 -Q celery` in its own
process group with:
- DATABASE_URL aimed at the database pytest-django created (a SQLite file, or
  `test_<name>` on PostgreSQL), so it sees what the test committed;
- its own filesystem broker folder under the test's tmp_path (or REDIS_URL when set,
  purged first), and the test process publishes to the same place;
- `worker_overrides` (a dict merged into settings.MAILOPS in the worker, e.g. a short
  LEASE_SECONDS); override the fixture in a test module to change it.

The test process must use the same values for settings it shares with the worker
(use the `settings` fixture for that).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0


def database_url() -> str:
    """The URL of the database this test process is using (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if name == ":memory:" or name.startswith("file:"):
            raise RuntimeError("a worker cannot share an in-memory SQLite database; set TEST NAME to a file")
        return f"sqlite:///{Path(name).resolve()}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(str(db['NAME']), safe='')}"
    raise RuntimeError(f"no worker support for {db['ENGINE']}")


class CeleryWorker:
    def __init__(self, *, var_dir: Path, log_dir: Path, overrides: dict[str, Any]) -> None:
        self.var_dir = var_dir
        self.log_dir = log_dir
        self.overrides = overrides
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "tests.support.worker_settings",
                "DATABASE_URL": database_url(),
                "MAILOPS_VAR_DIR": str(self.var_dir),
                "MAILOPS_TEST_OVERRIDES": json.dumps(self.overrides),
                "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Settings the worker reads straight from the environment rather than MAILOPS.
        if "LEASE_SECONDS" in self.overrides:
            env["MAILOPS_LEASE_SECONDS"] = str(self.overrides["LEASE_SECONDS"])
        if "BATCH_SIZE" in self.overrides:
            env["MAILOPS_BATCH_SIZE"] = str(self.overrides["BATCH_SIZE"])
        return env

    def start(self) -> CeleryWorker:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the worker is already running")
        self.starts += 1
        self.log_path = self.log_dir / f"worker-{self.starts}.log"
        log = open(self.log_path, "wb")
        celery = Path(sys.executable).with_name("celery")
        self.process = subprocess.Popen(
            [
                str(celery), "-A", "mailops", "worker", "--pool=prefork", "-c", "2", "-Q", "celery",
                "--loglevel=INFO", "-n", f"test{self.starts}-{os.getpid()}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill() takes the pool children too
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {self.process.returncode}:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the Celery worker was not ready after {READY_TIMEOUT}s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash or an OOM kill would."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        except ProcessLookupError:
            pass

    def restart(self) -> CeleryWorker:
        self.stop()
        return self.start()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-20000:]


def _use_broker(app: Any, transport_options: dict[str, Any] | None) -> None:
    """Point this process's producer at a broker.

    kombu keeps one connection pool per distinct broker (URL and transport options), so
    forgetting the app's cached pools is enough: the next publish finds or makes the
    pool for the new options, and the old one stays intact for when they are restored.
    """
    if transport_options is not None:
        # The namespaced key, which is the one the app reads (it came from CELERY_* settings).
        app.conf["CELERY_BROKER_TRANSPORT_OPTIONS"] = transport_options
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def worker_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def celery_worker(transactional_db: None, tmp_path: Path, worker_overrides: dict[str, Any]) -> Iterator[CeleryWorker]:
    from mailops.celery import app

    var_dir = tmp_path / "worker-var"
    saved = dict(app.conf.broker_transport_options or {})
    if settings.REDIS_URL:
        app.control.purge()
        options = None
    else:
        queue = var_dir / "broker" / "queue"
        processed = var_dir / "broker" / "processed"
        queue.mkdir(parents=True)
        processed.mkdir(parents=True)
        options = {**saved, "data_folder_in": str(queue), "data_folder_out": str(queue),
                   "processed_folder": str(processed)}
    _use_broker(app, options)
    worker = CeleryWorker(var_dir=var_dir, log_dir=tmp_path, overrides=worker_overrides)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()
        _use_broker(app, saved if options is not None else None)
