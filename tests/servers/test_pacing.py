"""min_delay_seconds between a server's emails, shared by every worker."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from servers import pacing
from servers.models import Server
from servers.relay import Relay
from servers.transports.base import OutgoingMessage
from servers.transports.smtp import SmtpTransport
from tests.support.engine import make_server
from tests.support.relays import smtp_config

DELAY = 0.2
# Loopback latency and thread scheduling jitter; far below what removing pacing would show (~0 s gaps).
TOLERANCE = 0.05


def receive_times(relay: Relay) -> list[float]:
    """When the relay stored each message, from its maildir file names ("<epoch>.<queue id>.<host>")."""
    assert relay.maildir is not None
    names = [p.name for p in Path(relay.maildir, "new").iterdir()]
    return sorted(float(".".join(name.split(".")[:2])) for name in names)


@pytest.mark.django_db
def test_booked_slots_follow_each_other_by_the_delay():
    server = make_server(min_delay=2.0)
    with time_machine.travel(dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC), tick=False):
        first = pacing.book(server, 3)
        second = pacing.book(server, 1)
        third = pacing.book(server, 1)
    assert second - first == dt.timedelta(seconds=6)
    assert third - second == dt.timedelta(seconds=2)


@pytest.mark.django_db
def test_a_server_without_delay_books_nothing():
    server = make_server(min_delay=0)
    before = timezone.now()
    assert pacing.book(server, 100) >= before
    server.refresh_from_db()
    assert server.next_send_at is None


@pytest.mark.django_db
def test_an_idle_server_sends_at_once_and_backlog_reports_the_wait():
    server = make_server(min_delay=2.0)
    with time_machine.travel(dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC), tick=False):
        Server.objects.filter(pk=server.pk).update(next_send_at=timezone.now() - dt.timedelta(hours=1))
        assert pacing.book(server, 5) == timezone.now()
        server.refresh_from_db()
        assert pacing.backlog_seconds(server) == 10.0


@pytest.mark.django_db(transaction=True)
def test_pacing_holds_across_workers(relay):
    server = make_server(relay, min_delay=DELAY)
    config = smtp_config(relay)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with SmtpTransport(config) as transport:
                for i in range(4):
                    pacing.wait_until(pacing.book(server, 1))
                    outcome = transport.send(
                        OutgoingMessage(
                            message_id=f"<{n}.{i}@example.com>",
                            envelope_from="bounce@example.com",
                            recipient=f"w{n}-{i}@example.com",
                            data=f"Subject: {n}.{i}\r\n\r\nhello\r\n".encode(),
                        )
                    )
                    assert outcome.accepted, outcome
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    times = receive_times(relay)
    assert len(times) == 12
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= DELAY - TOLERANCE, gaps
