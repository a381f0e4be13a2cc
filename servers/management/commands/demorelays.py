from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from servers.relay import Faults, start_relays


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{value} is not a share between 0.0 and 1.0")
    return share


class Command(BaseCommand):
    help = (
        "Run demo SMTP relays on loopback until Ctrl-C, so the pool has somewhere real to send. "
        "Each relay keeps every message in MAILDIR/relay-N/new and can misbehave on purpose "
        "(4xx/5xx replies, dropped connections, slow replies)."
    )
    # The relays touch neither the database nor the URLs; they should start even when
    # the rest of the project does not pass its checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=5, help="how many relays (default 5)")
        parser.add_argument(
            "--base-port", type=int, default=2601, help="port of the first relay; the next ones follow (0: any free port)"
        )
        parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
        parser.add_argument("--maildir", default="var/relays", help="where received mail is kept")
        parser.add_argument("--security", choices=["none", "starttls", "tls"], default="none")
        parser.add_argument("--username", default=None, help="require AUTH with this username")
        parser.add_argument("--password", default=None)
        parser.add_argument("--fail-4xx", type=_share, default=0.0, help="share of RCPTs answered with a 4xx")
        parser.add_argument("--fail-5xx", type=_share, default=0.0, help="share of RCPTs answered with a 5xx")
        parser.add_argument("--fail-at", choices=["rcpt", "data"], default="rcpt")
        parser.add_argument("--drop", type=_share, default=0.0, help="share of transactions cut before DATA")
        parser.add_argument(
            "--drop-after-data", type=_share, default=0.0, help="share of messages kept but never answered (lost reply)"
        )
        parser.add_argument("--slow", type=_share, default=0.0, help="share of replies delayed by --slow-delay")
        parser.add_argument("--slow-delay", type=float, default=2.0, help="seconds (default 2)")
        parser.add_argument("--seed", type=int, default=None, help="make the faults repeat run after run")
        parser.add_argument(
            "--memory-limit", type=int, default=10_000, help="messages kept in memory per relay (disk keeps all)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        if options["username"] and options["password"] is None:
            raise CommandError("--username needs --password")
        try:
            faults = Faults(
                fail_4xx=options["fail_4xx"],
                fail_5xx=options["fail_5xx"],
                fail_at=options["fail_at"],
                drop=options["drop"],
                drop_after_data=options["drop_after_data"],
                slow=options["slow"],
                slow_delay=options["slow_delay"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # aiosmtpd logs every command at INFO; the demo only wants to hear of trouble.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        maildir = Path(options["maildir"])
        try:
            relays = start_relays(
                options["count"],
                base_port=options["base_port"],
                maildir=maildir,
                host=options["host"],
                seed=options["seed"],
                security=options["security"],
                username=options["username"],
                password=options["password"],
                faults=faults,
                memory_limit=options["memory_limit"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']} from port {options['base_port']}: {exc}. "
                "Pick another --base-port, or 0 for free ports."
            ) from exc

        for relay in relays:
            self.stdout.write(f"{relay.name} listening on {relay.host}:{relay.port} ({relay.security}), mail in {relay.maildir}")
        self.stdout.write(f"ports: {' '.join(str(r.port) for r in relays)}")
        self.stdout.write("Ctrl-C to stop.")
        self.stdout.flush()

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for relay in relays:
                relay.stop()
            received = sum(relay.counters["messages"] for relay in relays)
            self.stdout.write(f"stopped; {received} messages received")
