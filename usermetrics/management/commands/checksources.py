"""``manage.py checksources``: refresh every configured source once and print its health (sync)."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.core.management.base import BaseCommand, CommandError, CommandParser

from usermetrics import services


class Command(BaseCommand):
    """Print each source's state, user count, last success and last error."""

    help = (
        "Fetch every configured source once and print its health and user count. "
        "Exits with status 1 when a source is not ok (for scripts and health checks)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--no-fail: exit 0 even when a source is down."""
        parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a source is not ok")

    def handle(self, *args: Any, no_fail: bool, **options: Any) -> None:
        """Refresh once with a fresh service and report."""
        snapshot = async_to_sync(services.sources_check)()
        if snapshot is None:
            raise CommandError("No sources configured: set NAT_SOURCES or USERMETRICS['SOURCES'].")
        bad = 0
        for health in snapshot.sources:
            style = self.style.SUCCESS if health.state == "ok" else self.style.ERROR
            where = f" {health.url}" if health.url else ""
            self.stdout.write(
                f"{health.name} ({health.kind}{where}): "
                + style(health.state)
                + f", {health.users} user{'s' if health.users != 1 else ''}"
            )
            if health.last_success is not None:
                self.stdout.write(f"  last success: {health.last_success.isoformat()}")
            if health.last_error:
                self.stdout.write(f"  last error: {health.last_error}")
            bad += health.state != "ok"
        self.stdout.write(f"{len(snapshot.users)} distinct user{'s' if len(snapshot.users) != 1 else ''} in all.")
        if bad and not no_fail:
            raise CommandError(f"{bad} of {len(snapshot.sources)} sources not ok.", returncode=1)
