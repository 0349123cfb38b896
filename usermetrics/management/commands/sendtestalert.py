"""``manage.py sendtestalert``: send one test notification through every configured alert route (sync)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usermetrics import services


class Command(BaseCommand):
    """Print each route (in Apprise's privacy form) and whether the test notification reached it."""

    help = (
        "Send one test notification through every configured alert route (USERMETRICS_ALERT_URLS and the "
        "enabled rules' own routes) and print each route's result. Exits with status 1 when one failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--url: test these Apprise URLs instead of the configured routes."""
        parser.add_argument("--url", action="append", default=[], help="an Apprise URL to test instead (repeatable)")

    def handle(self, *args: Any, url: list[str], **options: Any) -> None:
        """Send and report."""
        results = services.alerts_test_send(urls=url or None)
        if not results:
            raise CommandError(
                "No alert route is configured: set USERMETRICS_ALERT_URLS or give a rule its own routes."
            )
        failed = 0
        for r in results:
            if r.ok:
                self.stdout.write(f"{r.route}: " + self.style.SUCCESS("sent"))
            else:
                failed += 1
                self.stdout.write(f"{r.route}: " + self.style.ERROR("failed") + f" ({r.error})")
        if failed:
            raise CommandError(f"{failed} of {len(results)} routes failed.", returncode=1)
