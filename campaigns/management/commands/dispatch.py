from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from campaigns import dispatch


class Command(BaseCommand):
    help = "Run the campaign dispatcher once, or every few seconds with --loop (instead of Celery beat)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="keep dispatching until interrupted")
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between runs with --loop")

    def handle(self, *args, loop: bool, interval: float, **options) -> None:
        if loop:
            try:
                dispatch.run_loop(interval=interval)
            except KeyboardInterrupt:
                pass
            return
        report = dispatch.run_once()
        if not report.ran:
            self.stdout.write("another dispatcher is running; nothing done")
            return
        self.stdout.write(
            f"claimed {report.total_claimed} messages in {report.batches} batches "
            f"({', '.join(f'server {k}: {v}' for k, v in sorted(report.claimed.items())) or 'none'}); "
            f"reclaimed {report.reclaimed} expired leases; finished campaigns: {report.finished_campaigns or 'none'}"
        )
