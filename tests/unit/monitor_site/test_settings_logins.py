"""Login throttling (django-axes): repeated failures lock a username at an address out, manage.py unlocks it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "pw-staff-123"  # the staff_user fixture's


def _login(client: Client, password: str, username: str = "staff"):
    return client.post("/admin/login/?next=/", {"username": username, "password": password})


def _locked_out(staff_user) -> Client:
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "wrong").status_code == 200  # the login form again, with its error
    assert _login(client, "wrong").status_code == 429  # the failure that reaches the limit locks
    return client


def test_logins_the_axes_backend_comes_first():
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"


def test_logins_repeated_failures_lock_out_even_the_right_password(staff_user):
    client = _locked_out(staff_user)
    refused = _login(client, PASSWORD)
    assert refused.status_code == 429
    html = refused.content.decode()
    assert 'id="um-lockout"' in html and "Too many failed logins for “staff”" in html
    assert "manage.py axes_reset_username staff" in html
    assert "_auth_user_id" not in client.session
    # Per username and address: the same user from elsewhere, and another user here, still log in.
    assert _login(Client(REMOTE_ADDR="10.0.0.2"), PASSWORD).status_code == 302


def test_logins_manage_py_reset_unlocks(staff_user):
    client = _locked_out(staff_user)
    assert _login(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "staff")
    ok = _login(client, PASSWORD)
    assert ok.status_code == 302 and ok["Location"] == "/"
    assert client.session["_auth_user_id"] == str(staff_user.pk)


def test_logins_a_success_resets_the_count(staff_user):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "wrong")
    assert _login(client, PASSWORD).status_code == 302


def test_logins_force_login_still_works(staff_user):
    client = Client()
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200
