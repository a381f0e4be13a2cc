from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from campaigns.bounces import bounce_domain, make_listener


class Command(BaseCommand):
    help = (
        "Run the inbound SMTP listener for bounces and complaints sent to the VERP return path "
        "(b-<id>-<mac>@BOUNCE_DOMAIN). Point the bounce domain's MX at this host."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            default=settings.MAILOPS.get("BOUNCE_LISTENER_HOST", "127.0.0.1"),
            help="Address to listen on (default 127.0.0.1; use 0.0.0.0 to take mail from the internet).",
        )
        parser.add_argument("--port", type=int, default=settings.MAILOPS["BOUNCE_LISTENER_PORT"])

    def handle(self, *args: Any, **options: Any) -> None:
        listener = make_listener(host=options["host"], port=options["port"])
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        listener.start()
        self.stdout.write(f"Listening for bounces to *@{bounce_domain()} on {options['host']}:{listener.port}")
        try:
            stop.wait()
        finally:
            listener.stop()
            self.stdout.write("Bounce listener stopped.")
