"""A Server row turned into the plain TransportConfig the transports take.

This is the only place where a server's secrets leave the model, decrypted, and they
go straight into a config whose repr hides them.
"""

from __future__ import annotations

from django.conf import settings

from .models import Server, ServerKind
from .transports.base import TransportConfig


def transport_config(server: Server) -> TransportConfig:
    mailops = settings.MAILOPS
    timeouts = {
        "connect_timeout": float(mailops["SMTP_CONNECT_TIMEOUT"]),
        "command_timeout": float(mailops["SMTP_COMMAND_TIMEOUT"]),
        "data_timeout": float(mailops["SMTP_DATA_TIMEOUT"]),
    }
    if server.kind == ServerKind.SENDGRID:
        return TransportConfig(
            kind="sendgrid",
            api_key=server.api_key or "",
            api_host=mailops["SENDGRID_API_HOST"],
            **timeouts,
        )
    return TransportConfig(
        kind="smtp",
        host=server.host,
        port=server.port,
        security=server.security,  # type: ignore[arg-type]
        username=server.username,
        password=server.password or "",
        # ip_address is also used for display and DNSBL checks; binding it is opt-in because
        # it only works on a machine that actually owns that address.
        source_address=(server.ip_address or "") if server.bind_source_address else "",
        helo_name=server.helo_name,
        verify_tls=server.verify_tls,
        **timeouts,
    )
