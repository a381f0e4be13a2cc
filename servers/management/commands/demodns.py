from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from servers.dnsstub import LoopbackDNSServer


class Command(BaseCommand):
    help = (
        "Serve DNS on loopback for the demo, so blocklist sweeps never leave the machine. Every name "
        "answers NXDOMAIN (clear) unless listed with --list IP."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=5399)
        parser.add_argument("--list", action="append", default=[], metavar="IP", help="answer 127.0.0.2 for this IPv4 on every zone")

    def handle(self, *args, port: int, list: list[str], **options):
        from django.conf import settings

        from servers.dnsbl import reversed_name

        server = LoopbackDNSServer(port=port)
        for ip in list:
            for zone in settings.MAILOPS["DNSBL_ZONES"]:
                server.set(reversed_name(ip, zone), "A", ["127.0.0.2"])
                server.set(reversed_name(ip, zone), "TXT", [f"demo listing of {ip}"])
        server.start()
        self.stdout.write(f"demo DNS on 127.0.0.1:{server.port} (UDP+TCP); NXDOMAIN for everything else")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
