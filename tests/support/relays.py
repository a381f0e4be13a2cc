"""Pytest fixtures for real SMTP relays on loopback (servers.relay.Relay).

Make them available in a conftest with:

    from tests.support.relays import relay, relay_factory  # noqa: F401

    def test_it_delivers(relay):
        transport = SmtpTransport(smtp_config(relay))
        ...
        assert len(relay.messages) == 1

`relay` is a plain relay (no TLS, no AUTH, no faults); `relay_factory(**options)` starts
more, with any Relay option (security, username/password, faults, overrides, seed...).
Every relay keeps its mail under the test's tmp_path and is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.relay import Relay
from servers.transports.base import TransportConfig

# Tests stay fast when something hangs on purpose; a few seconds is still far more than
# loopback ever needs.
TEST_TIMEOUTS = {"connect_timeout": 3.0, "command_timeout": 3.0, "data_timeout": 3.0}


def quick_smtp_timeouts(settings: Any, seconds: float = 3.0, **mailops: Any) -> None:
    """Give the project's own SMTP timeouts (and any other MAILOPS keys passed) test values,
    through pytest-django's `settings` fixture."""
    settings.MAILOPS = {
        **settings.MAILOPS,
        "SMTP_CONNECT_TIMEOUT": seconds,
        "SMTP_COMMAND_TIMEOUT": seconds,
        "SMTP_DATA_TIMEOUT": seconds,
        **mailops,
    }


def smtp_config(relay: Relay, **changes: Any) -> TransportConfig:
    """A TransportConfig aimed at this relay, matching its TLS mode; the relay's certificate
    is self-signed, so verification is off unless a test turns it on."""
    settings: dict[str, Any] = {
        "kind": "smtp",
        "host": relay.host,
        "port": relay.port,
        "security": relay.security,
        "helo_name": "client.mailops.test",
        "verify_tls": False,
        **TEST_TIMEOUTS,
    }
    settings.update(changes)
    return TransportConfig(**settings)


@pytest.fixture
def relay_factory(tmp_path: Path) -> Iterator[Callable[..., Relay]]:
    started: list[Relay] = []

    def start(**options: Any) -> Relay:
        name = options.pop("name", f"relay-{len(started) + 1}")
        options.setdefault("maildir", tmp_path / "relays" / name)
        options.setdefault("seed", 1234)
        relay = Relay(name=name, **options)
        relay.start()
        started.append(relay)
        return relay

    yield start
    for relay in started:
        relay.stop()


@pytest.fixture
def relay(relay_factory: Callable[..., Relay]) -> Relay:
    return relay_factory()
