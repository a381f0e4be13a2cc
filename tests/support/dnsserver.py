"""The `dns_server` fixture: a real DNS server on a free loopback port (servers/dnsstub.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers.dnsstub import LoopbackDNSServer, ReceivedQuery

__all__ = ["LoopbackDNSServer", "ReceivedQuery", "dns_server"]


@pytest.fixture
def dns_server() -> Iterator[LoopbackDNSServer]:
    server = LoopbackDNSServer().start()
    try:
        yield server
    finally:
        server.stop()
