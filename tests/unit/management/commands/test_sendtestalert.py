"""sendtestalert: a test notification to each route, each route's outcome printed without its secrets."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.support.alert_helpers import SECRET, secret_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_rules")]


def test_sendtestalert_command_prints_each_route(settings, receiver):
    good = receiver()
    settings.USERMETRICS = {**settings.USERMETRICS, "ALERTS": {"URLS": [secret_url(good.port)]}}
    out = StringIO()
    call_command("sendtestalert", stdout=out)
    assert f"JSON: json://ops:****@127.0.0.1:{good.port}/…: sent" in out.getvalue()
    assert SECRET not in out.getvalue() and len(good.received) == 1
    good.stop()
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("sendtestalert", stdout=out)
    assert failed.value.returncode == 1 and "failed" in out.getvalue() and SECRET not in out.getvalue()
    settings.USERMETRICS = {**settings.USERMETRICS, "ALERTS": {"URLS": []}}
    with pytest.raises(CommandError, match="No alert route is configured"):
        call_command("sendtestalert")
