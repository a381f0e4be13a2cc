"""Server state transitions. Each one is a conditional UPDATE, so only the worker that actually
changes the state sends the signal (one alert per state change, however many workers race)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import Server, ServerState
from .signals import server_delisted, server_down, server_listed, server_suspect, server_up

SUSPECT_SECONDS = 120


def _transition(server: Server, *, from_states: tuple[str, ...], to: str, reason: str) -> bool:
    now = timezone.now()
    changed = Server.objects.filter(pk=server.pk, state__in=from_states).update(
        state=to, state_reason=reason[:500], state_changed_at=now
    )
    if changed:
        server.state, server.state_reason, server.state_changed_at = to, reason[:500], now
    return bool(changed)


def mark_down(server: Server, *, error: str) -> bool:
    if _transition(server, from_states=(ServerState.ACTIVE,), to=ServerState.DOWN, reason=error):
        transaction.on_commit(lambda: server_down.send(sender=Server, server=server, error=error))
        return True
    return False


def mark_up(server: Server) -> bool:
    if _transition(server, from_states=(ServerState.DOWN,), to=ServerState.ACTIVE, reason=""):
        Server.objects.filter(pk=server.pk).update(suspect_until=None)
        transaction.on_commit(lambda: server_up.send(sender=Server, server=server, error=""))
        return True
    return False


def pause_blocklisted(server: Server, *, reason: str) -> bool:
    if _transition(
        server, from_states=(ServerState.ACTIVE, ServerState.DOWN), to=ServerState.PAUSED_BLOCKLISTED, reason=reason
    ):
        transaction.on_commit(lambda: server_listed.send(sender=Server, server=server, error=reason))
        return True
    return False


def resume_delisted(server: Server) -> bool:
    if _transition(server, from_states=(ServerState.PAUSED_BLOCKLISTED,), to=ServerState.ACTIVE, reason=""):
        transaction.on_commit(lambda: server_delisted.send(sender=Server, server=server, error=""))
        return True
    return False


def pause_manual(server: Server, *, reason: str = "paused by an operator") -> bool:
    return _transition(
        server,
        from_states=(ServerState.ACTIVE, ServerState.DOWN, ServerState.PAUSED_BLOCKLISTED),
        to=ServerState.PAUSED_MANUAL,
        reason=reason,
    )


def resume_manual(server: Server) -> bool:
    """An operator's resume puts the server back in rotation; the next sweeps re-check it."""
    return _transition(server, from_states=(ServerState.PAUSED_MANUAL,), to=ServerState.ACTIVE, reason="")


def mark_suspect(server: Server, *, error: str, seconds: float = SUSPECT_SECONDS) -> None:
    """Keep a server out of rotation after a send-time failure: briefly after a connect/TLS/auth
    failure (health decides the rest), until the reset after a rate limit.

    A hold is only ever extended: a brief suspicion raised by a concurrent batch must not
    cut short a rate limit's hold that runs for another hour."""
    until = timezone.now() + dt.timedelta(seconds=seconds)
    longer = Q(suspect_until__isnull=True) | Q(suspect_until__lt=until)
    if not Server.objects.filter(longer, pk=server.pk).update(suspect_until=until):
        return
    server.suspect_until = until
    transaction.on_commit(lambda: server_suspect.send(sender=Server, server=server, error=error))
