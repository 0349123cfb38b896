"""Delivery: a route's secrets are never logged, shown or kept in an error."""

from __future__ import annotations

import logging

import pytest

from tests.support.alert_helpers import SECRET, TOKEN, secret_url
from tests.support.factories import BASE_TIME
from usermetrics.alerts.delivery import route_label, scrub, send
from usermetrics.alerts.messages import probe_message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_rules")]


def test_alerts_route_secrets_are_never_logged(caplog, receiver):
    r = receiver()
    r.mode = "fail"
    url = secret_url(r.port)
    with caplog.at_level(logging.DEBUG):
        ok, error = send(url, probe_message(BASE_TIME))
    assert not ok and "500" in error
    assert route_label(url) == f"JSON: json://ops:****@127.0.0.1:{r.port}/…"
    assert SECRET not in caplog.text and TOKEN not in caplog.text and SECRET not in error
    assert scrub(f"POST {url} failed", url).count("****") >= 2
    assert SECRET not in scrub(f"POST {url} failed", url) and TOKEN not in scrub(f"POST {url} failed", url)
