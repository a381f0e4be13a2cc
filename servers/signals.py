"""Pool events, as in the seed's `on('server-down', …)`. Every receiver gets server= and error=."""

from __future__ import annotations

from django.dispatch import Signal

health_check_failed = Signal()  # server, error, stage
server_down = Signal()  # server, error
server_up = Signal()  # server, error ("")
server_listed = Signal()  # server, error (zones and reasons)
server_delisted = Signal()  # server, error ("")
server_suspect = Signal()  # server, error: a send-time connect/TLS/auth failure
