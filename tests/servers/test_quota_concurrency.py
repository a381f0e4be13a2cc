"""Invariant 1 under contention: however many workers reserve at once, no server passes its cap.

The PostgreSQL test runs 4 processes, each with its own database connection, as Celery
workers on several machines would. The thread test runs on whatever database the suite
uses (SQLite by default), each thread with its own connection.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
from collections import Counter

import pytest
from django.db import connection, connections

from servers import quota
from servers.daytime import sending_day
from servers.models import Quota, Server
from tests.support.engine import make_server

WORKERS = 4
CAPS = {"big": 400, "small": 150, "tiny": 7}

# Rows must be committed for other connections to see them. Nothing here needs the seeded
# presets, which the flush after a transactional test removes.
pytestmark = pytest.mark.django_db(transaction=True)


def make_servers() -> dict[str, Server]:
    servers = {name: make_server(name=f"cc-{name}", daily_limit=cap) for name, cap in CAPS.items()}
    quota.ensure_rows(list(servers.values()), sending_day())
    return servers


def hammer(server_ids: list[int], seed: int) -> Counter[int]:
    """Reserve random blocks on random servers until every server refuses; returns grants per server."""
    rng = random.Random(seed)
    servers = list(Server.objects.filter(pk__in=server_ids))
    granted: Counter[int] = Counter()
    open_servers = list(servers)
    while open_servers:
        server = rng.choice(open_servers)
        got = quota.reserve(server, rng.randint(1, 5))
        if got == 0:
            open_servers.remove(server)
        granted[server.pk] += got
    return granted


def _process_main(server_ids: list[int], seed: int, results: multiprocessing.Queue) -> None:
    # The parent's connections were closed before the fork; this opens the child's own.
    try:
        results.put(("ok", dict(hammer(server_ids, seed))))
    except BaseException as exc:  # report, don't hang the parent
        results.put(("error", repr(exc)))
    finally:
        connections.close_all()


def assert_caps_held(servers: dict[str, Server], totals: Counter[int]) -> None:
    for name, server in servers.items():
        row = Quota.objects.get(server=server, day=sending_day())
        # Every worker ran until refused, so the cap was reached, and never passed.
        assert totals[server.pk] == CAPS[name], (name, totals[server.pk])
        assert row.used == CAPS[name]


def _require_postgres() -> None:
    if connection.vendor == "postgresql":
        return
    message = "needs DATABASE_URL pointing at PostgreSQL, e.g. postgres://postgres@127.0.0.1:5432/mailops"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)


@pytest.mark.postgres
def test_four_processes_never_reserve_past_any_cap_on_postgresql():
    _require_postgres()
    servers = make_servers()
    ids = [s.pk for s in servers.values()]
    connections.close_all()  # a forked child must not share the parent's socket
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_process_main, args=(ids, seed, results)) for seed in range(WORKERS)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    errors = [detail for kind, detail in reports if kind == "error"]
    assert not errors, errors
    totals: Counter[int] = Counter()
    for _, granted in reports:
        totals.update(granted)
    assert_caps_held(servers, totals)


def test_four_threads_never_reserve_past_any_cap():
    servers = make_servers()
    ids = [s.pk for s in servers.values()]
    totals: Counter[int] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(seed: int) -> None:
        try:
            granted = hammer(ids, seed)
            with lock:
                totals.update(granted)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert_caps_held(servers, totals)


def test_a_reservation_that_fits_is_one_conditional_update():
    """No read first: the UPDATE's own WHERE decides, so there is nothing to race."""
    from django.test.utils import CaptureQueriesContext

    server = make_servers()["big"]
    with CaptureQueriesContext(connection) as queries:
        assert quota.reserve(server, 3) == 3
    assert len(queries) == 1
    assert queries[0]["sql"].startswith("UPDATE") and "<=" in queries[0]["sql"]
    assert Quota.objects.get(server=server, day=sending_day()).used == 3
