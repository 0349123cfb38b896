"""``manage.py importidentities FILE.csv``: name NAT user ids from label,kind,value lines (sync)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from usermetrics.services import identities_import


class Command(BaseCommand):
    """Register known identities from a CSV; stores label, kind and the derived user id only."""

    help = (
        "Register identities from a CSV of label,kind,value lines (an optional header line label,kind,value). "
        "kind is cookie, jwt_sub, api_key or basic (value user:password). Only the label, the kind and the "
        "user id NAT derives from the value are stored. '-' reads standard input. All lines or none."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The CSV file."""
        parser.add_argument("file", help="CSV file, or - for standard input")

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        """Import and report the counts, or every rejected line."""
        if file == "-":
            result = identities_import(rows=sys.stdin)
        else:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"No such file: {file}")
            with path.open(newline="", encoding="utf-8-sig") as rows:
                result = identities_import(rows=rows)
        if result.errors:
            raise CommandError("Nothing imported:\n  " + "\n  ".join(result.errors))
        self.stdout.write(self.style.SUCCESS(f"Imported identities: {result.created} new, {result.updated} updated."))
