from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from servers import health


class Command(BaseCommand):
    help = "Probe every pool server now (ignoring the interval), record the results, and print a table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--due-only", action="store_true", help="Probe only the servers whose health-check interval has passed."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        outcomes = health.sweep(force=not options["due_only"])
        if not outcomes:
            self.stdout.write("No server to check (none configured in the pool, or none due).")
            return
        rows = [("server", "state", "ok", "stage", "latency", "error")]
        for o in outcomes:
            latency = f"{o.check.latency_ms:.0f} ms" if o.check.latency_ms is not None else "-"
            state = o.server.state + (f" (was {'down' if o.transition == 'up' else 'active'})" if o.transition else "")
            ok = "yes" if o.check.ok else "NO"
            rows.append((o.server.name, state, ok, o.check.stage or "-", latency, o.check.error))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[-1]]
            self.stdout.write("  ".join(cells).rstrip())
