"""How pool state reads on screen: the five words an operator scans for, each with its colour class."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from servers.models import Server, ServerState


@dataclass(frozen=True)
class Status:
    key: str  # also the CSS modifier: badge--up, badge--down, …
    label: str
    detail: str = ""


_LABELS = {
    "up": _("up"),
    "down": _("down"),
    "paused": _("paused"),
    "listed": _("listed"),
    "unconfigured": _("unconfigured"),
    "idle": _("out of pool"),
}


def server_status(server: Server) -> Status:
    """The seed's up/down plus the states it lacks: paused, listed, unconfigured."""
    if not server.in_pool:
        key = "idle"
    elif server.state == ServerState.ACTIVE:
        key = "up"
    elif server.state == ServerState.DOWN:
        key = "down"
    elif server.state == ServerState.PAUSED_MANUAL:
        key = "paused"
    elif server.state == ServerState.PAUSED_BLOCKLISTED:
        key = "listed"
    else:
        key = "unconfigured"
    return Status(key=key, label=str(_LABELS[key]), detail=server.state_reason)


def chart_labels() -> dict[str, str]:
    """Series names for the charts, in the reader's language (passed to charts.js as JSON)."""
    return {
        "sent": str(_("Sent")),
        "delivered": str(_("Delivered")),
        "undelivered": str(_("Failed or bounced")),
        "deferred": str(_("Deferred")),
        "bounced": str(_("Bounced")),
        "failed": str(_("Failed")),
        "reputation": str(_("Reputation")),
    }
