"""importidentities: a CSV of credentials registered all or nothing, errors by line without the secrets."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.factories import NAT_REPORTED
from usermetrics.identities import identity_labels
from usermetrics.models import Identity


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
