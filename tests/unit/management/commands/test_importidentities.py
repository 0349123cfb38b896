"""Management commands: ensureadmin, importidentities and checksources, run as an operator runs them."""

from __future__ import annotations

import io
import os

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.machine import free_port
from tests.unit.test_identities import NAT_REPORTED
from usermetrics.identities import identity_labels
from usermetrics.models import Identity


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


@pytest.mark.django_db
def test_importidentities_command(tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("label,kind,value\nAlice,cookie,cookie-alice\n\nBob,api_key,key-bob\nDave,basic,dave:pw\n")
    out = io.StringIO()
    call_command("importidentities", str(path), stdout=out)
    assert "3 new, 0 updated" in out.getvalue()
    assert identity_labels() == {
        user_id: label
        for (_, _, user_id), label in zip(
            [NAT_REPORTED[0], NAT_REPORTED[1], NAT_REPORTED[3]], ["Alice", "Bob", "Dave"], strict=True
        )
    }
    assert set(Identity.objects.values_list("kind", flat=True)) == {"cookie", "api_key", "basic"}


@pytest.mark.django_db
def test_importidentities_rejects_bad_lines_without_echoing_secrets(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Alice,cookie,cookie-alice\nMallory,basic,secret-without-colon\nEve,jwt_sub\n")
    with pytest.raises(CommandError) as raised:
        call_command("importidentities", str(path))
    message = str(raised.value)
    assert "line 2: Basic credentials must be written user:password" in message
    assert "line 3: expected 3 fields" in message
    assert "secret-without-colon" not in message
    assert Identity.objects.count() == 0  # all or nothing
    with pytest.raises(CommandError, match="No such file"):
        call_command("importidentities", str(tmp_path / "missing.csv"))


def test_checksources_reports_a_down_source(settings):
    settings.USERMETRICS = {"SOURCES": [{"NAME": "gone", "URL": f"http://127.0.0.1:{free_port()}", "TIMEOUT": 2}]}
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1 sources not ok"):
        call_command("checksources", stdout=out)
    assert "gone (nat http://127.0.0.1:" in out.getvalue() and "down, 0 users" in out.getvalue()
    assert "last error: ConnectError" in out.getvalue()
    out = io.StringIO()
    call_command("checksources", "--no-fail", stdout=out)
    assert "down" in out.getvalue()


def test_checksources_without_sources_says_so(settings):
    settings.USERMETRICS = {"DEMO": {"ENABLED": False}}
    with pytest.raises(CommandError, match="No sources configured"):
        call_command("checksources")
