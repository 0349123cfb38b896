"""``manage.py ensureadmin``: make sure a superuser exists to log in with (sync)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    """Create the admin user if missing; set its password from DASHBOARD_ADMIN_PASSWORD when given."""

    help = (
        "Ensure a superuser exists. Password from DASHBOARD_ADMIN_PASSWORD; otherwise a new user gets a "
        "generated password, printed once, and an existing user keeps its password."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--username (default: DASHBOARD_ADMIN_USER or 'admin')."""
        parser.add_argument("--username", default=os.environ.get("DASHBOARD_ADMIN_USER", "admin"))

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        """Create or update the user and say what happened."""
        user_model = get_user_model()
        password = os.environ.get("DASHBOARD_ADMIN_PASSWORD", "")
        user = user_model.objects.filter(username=username).first()
        if user is None:
            generated = not password
            if generated:
                password = secrets.token_urlsafe(18)
            user_model.objects.create_superuser(username=username, email="", password=password)
            if generated:
                self.stdout.write(
                    self.style.SUCCESS(
                        f"Created admin user '{username}' with password: {password}\n"
                        "  (shown once; set DASHBOARD_ADMIN_PASSWORD to choose it)"
                    )
                )
            else:
                self.stdout.write(f"Created admin user '{username}' with the password in DASHBOARD_ADMIN_PASSWORD.")
            return
        changed = []
        if password:
            user.set_password(password)
            changed.append("password from DASHBOARD_ADMIN_PASSWORD")
        if not (user.is_staff and user.is_superuser and user.is_active):
            user.is_staff = user.is_superuser = user.is_active = True
            changed.append("staff and superuser rights")
        if changed:
            user.save()
            self.stdout.write(f"Admin user '{username}' exists; set {' and '.join(changed)}.")
        else:
            # The generated password was shown once, on the first run: say how to get in now.
            self.stdout.write(
                f"Admin user '{username}' exists; password unchanged. Forgot it? Set one with\n"
                f"  DASHBOARD_ADMIN_PASSWORD='a new password' python3 scripts/dev.py run\n"
                f"or: .venv/bin/python manage.py changepassword {username}"
            )
