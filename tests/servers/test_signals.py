"""The pool's event signals, as the seed's `on('server-down', (event) => …)` examples use them:
every receiver gets `server` and `error`, when a real relay goes down over health sweeps and
comes back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import time_machine

from servers import health
from servers.models import HealthCheck, Server, ServerState
from servers.signals import health_check_failed, server_down, server_up
from tests.support.monitoring import make_configuration, make_relay_server
from tests.support.relays import quick_smtp_timeouts, relay, relay_factory  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)

START = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
INTERVAL = dt.timedelta(seconds=300)


@pytest.fixture(autouse=True)
def short_timeouts(settings):
    quick_smtp_timeouts(settings, 2.0)


@dataclass(frozen=True)
class Event:
    name: str
    sender: Any
    server: Server
    error: str
    state: str  # the server's state as the receiver saw it
    extra: dict[str, Any]


@pytest.fixture
def events() -> Iterator[list[Event]]:
    """Receivers written like the seed's listeners: `server` and `error` are required keywords."""
    seen: list[Event] = []

    def listener(name: str):
        def receive(sender: Any, *, server: Server, error: str, signal: Any, **extra: Any) -> None:
            seen.append(Event(name, sender, server, error, server.state, extra))

        return receive

    receivers = {
        server_down: listener("server-down"),
        server_up: listener("server-up"),
        health_check_failed: listener("health-check-failed"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)


def test_receivers_get_the_server_and_the_error_as_a_relay_goes_down_and_comes_back(relay_factory, events):
    pool = relay_factory(name="pool")
    with time_machine.travel(START, tick=False) as clock:
        make_configuration(health_check_interval_seconds=300, health_failures_to_down=2)
        server = make_relay_server(1, pool)

        health.sweep()
        assert events == [], "a healthy probe sends nothing"

        pool.set_down(True)
        for _ in range(3):  # active, then down on the second failure, then still down
            clock.shift(INTERVAL)
            health.sweep()

        pool.set_down(False)
        clock.shift(INTERVAL)
        health.sweep()

    failures = list(HealthCheck.objects.filter(ok=False).order_by("checked_at").values_list("error", flat=True))
    assert len(failures) == 3 and all(failures)
    assert [e.name for e in events] == [
        "health-check-failed",
        "health-check-failed",
        "server-down",
        "health-check-failed",
        "server-up",
    ]
    assert all(e.sender is Server and e.server.pk == server.pk for e in events)
    # As in the seed's listeners: `Servidor caído: ${event.server}`, `Error: ${event.error}`.
    assert {f"Servidor caído: {e.server}" for e in events} == {"Servidor caído: SMTP Server 1"}

    first, second, down, third, up = events
    assert [(e.error, e.extra) for e in (first, second, third)] == [(error, {"stage": "connect"}) for error in failures]
    assert down.error == f"2 health checks failed in a row; last: {failures[1]}"
    assert down.state == ServerState.DOWN and down.extra == {}
    assert up.error == "" and up.state == ServerState.ACTIVE and up.extra == {}
    server.refresh_from_db()
    assert server.state == ServerState.ACTIVE and server.state_reason == ""


def test_a_server_already_down_sends_no_second_server_down(relay_factory, events):
    pool = relay_factory(name="pool")
    pool.set_down(True)
    make_configuration(health_failures_to_down=1)
    make_relay_server(1, pool)

    for _ in range(3):
        health.sweep(force=True)

    assert [e.name for e in events] == [
        "health-check-failed", "server-down", "health-check-failed", "health-check-failed",
    ]
    down = events[1]
    assert down.state == ServerState.DOWN
    assert "failed in a row" in down.error and down.error.endswith(events[0].error)
