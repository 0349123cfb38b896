"""ensureadmin: an admin user created once, its password generated and shown once or taken from the environment."""

from __future__ import annotations

import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command


@pytest.mark.django_db
def test_ensureadmin_creates_once_and_keeps_the_password(monkeypatch):
    monkeypatch.delenv("DASHBOARD_ADMIN_PASSWORD", raising=False)
    out = io.StringIO()
    call_command("ensureadmin", "--username", "root", stdout=out)
    assert "Created admin user 'root' with password:" in out.getvalue()
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff and user.has_usable_password()
    again = io.StringIO()
    call_command("ensureadmin", "--username", "root", stdout=again)
    assert "password unchanged" in again.getvalue()
    # A second run says how to set a password, since the generated one is never shown again.
    assert "DASHBOARD_ADMIN_PASSWORD=" in again.getvalue() and "changepassword root" in again.getvalue()
    monkeypatch.setenv("DASHBOARD_ADMIN_PASSWORD", "a-chosen-password-123")
    call_command("ensureadmin", "--username", "root", stdout=io.StringIO())
    user.refresh_from_db()
    assert user.check_password(os.environ["DASHBOARD_ADMIN_PASSWORD"])
