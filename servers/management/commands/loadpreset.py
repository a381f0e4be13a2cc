from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from mailops.errors import DomainError
from servers import configuration
from servers.models import Server


class Command(BaseCommand):
    help = "Load one of the presets as the active configuration (servers keep their history)."

    def add_arguments(self, parser):
        parser.add_argument("key", nargs="?", help="preset key, e.g. professional; omit to list them")
        parser.add_argument("--strategy", help="rotation strategy: round-robin, random, least-used, best-performance")

    def handle(self, *args, key=None, strategy=None, **options):
        if not key:
            for preset in configuration.get_presets().values():
                star = "★" if preset.recommended else " "
                self.stdout.write(
                    f"{star} {preset.key:24} {preset.smtp_servers:>3} servers {preset.emails_per_day:>7,}/day "
                    f"${preset.monthly_cost}/month  ${preset.cost_per_1000}/1000"
                )
            return
        try:
            config = configuration.load_preset(key, rotation_strategy=strategy)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        summary = configuration.configuration_summary(config)
        self.stdout.write(
            self.style.SUCCESS(
                f"loaded {summary['name']}: {summary['servers']} servers, {summary['capacity']['emailsPerDay']:,} emails/day, "
                f"rotation {config.rotation_strategy}"
            )
        )
        for server in Server.objects.filter(in_pool=True):
            self.stdout.write(f"  {server.name:16} {server.state:20} {server.host or '-'}:{server.port} cap today {server.cap_for()}")
