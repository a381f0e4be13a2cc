from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from servers import blocklist


class Command(BaseCommand):
    help = (
        "Look up every pool server's IP on the configured DNS blocklists now (ignoring the interval), "
        "pause listed servers, resume cleared ones, check the sender domain, and print the results."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-domain", action="store_true", help="Do not check the sender domain's SPF/DKIM/DMARC."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sweeps = blocklist.sweep(force=True)
        if not sweeps:
            self.stdout.write("No in-pool server has an IP address to check.")
        rows = [("server", "ip", "zone", "status", "codes", "detail")]
        for s in sweeps:
            for r in s.results:
                rows.append((s.server.name, s.ip, r.zone, r.status, ",".join(r.codes), r.reason or r.error))
        if len(rows) > 1:
            self._table(rows)
        for s in sweeps:
            if s.action:
                self.stdout.write(f"{s.server.name}: {s.action}")

        if options["skip_domain"]:
            return
        check = blocklist.check_domain(force=True)
        if check is None:
            self.stdout.write("No sender domain configured (MAILOPS_SENDER_DOMAIN); SPF/DKIM/DMARC not checked.")
            return
        self.stdout.write("")
        self.stdout.write(f"Sender domain {check.domain}:")
        for name, value in (("SPF", check.spf), ("DKIM", check.dkim), ("DMARC", check.dmarc)):
            self.stdout.write(f"  {name:<6} {value.splitlines()[0] if value else 'missing'}")
        for problem in check.problems:
            self.stdout.write(f"  ! {problem}")

    def _table(self, rows: list[tuple[str, ...]]) -> None:
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
            self.stdout.write("  ".join(cells).rstrip())
