"""checksources: each configured source fetched once and reported, failing the command when one is not ok."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.support.machine import free_port


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
