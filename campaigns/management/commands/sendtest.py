"""Send one message through the pool and say which server took it, and why."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from campaigns.sending import send_email_report
from mailops.errors import DomainError


class Command(BaseCommand):
    help = "Send one test message through the pool (rotation, quota, failover) and explain the choice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--to", default="", help="Recipient (default: the first of ADMINS, else DEFAULT_FROM_EMAIL).")
        parser.add_argument("--subject", default="mailops test message")
        parser.add_argument("--text", default="This is a test message sent by `manage.py sendtest`.")
        parser.add_argument("--from", dest="from_", default=None, help="Sender (default: DEFAULT_FROM_EMAIL).")

    def handle(self, *args: Any, **options: Any) -> None:
        to = options["to"] or (settings.ADMINS[0][1] if settings.ADMINS else settings.DEFAULT_FROM_EMAIL)
        try:
            report = send_email_report(to=to, subject=options["subject"], text=options["text"], from_=options["from_"])
        except DomainError as exc:
            raise CommandError(exc.message) from None

        lines = [f"strategy: {report.strategy}", f"region: {report.region or 'none (no routing rule matched)'}"]
        if report.slot is not None:
            lines.append(f"priority: {report.slot.priority}" + (" (overflow)" if report.slot.priority > 1 else ""))
            if report.quota_left is not None:
                lines.append(f"quota left today: {report.quota_left}/{report.quota_cap}")
        if report.tried:
            lines.append("failovers tried:")
            lines += [f"  {t.server}: {t.reason}" for t in report.tried]
        else:
            lines.append("failovers tried: none")
        if report.outcome is not None:
            lines.append(f"reply: {report.outcome.summary}")

        response = report.response
        if response.get("success"):
            self.stdout.write(
                self.style.SUCCESS(
                    f"Sent to {to} through {response['server']} ({response['ipAddress']}), "
                    f"Message-ID {response['messageId']}"
                )
            )
            self.stdout.write("\n".join(lines))
            return
        self.stdout.write("\n".join(lines))
        retry = f"; retry at {response['retryAt']}" if response.get("retryAt") else ""
        raise CommandError(f"not sent: {response['error']}{retry}")
