"""The alerts page: what fires, in the header of every page and in the frames; the test button; staff only."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from tests.support.alert_helpers import SECRET, TOKEN, firing_source_down, rule_set, secret_url
from usermetrics import services
from usermetrics.models import Delivery
from usermetrics.selection import ViewSpec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_rules")]


async def test_alerts_page_header_and_frames_show_what_fires(producer_with_alerts, alerts_to, receiver, staff_client):
    r = receiver()
    alerts_to(secret_url(r.port))
    await firing_source_down(producer_with_alerts)
    assert [m["title"] for m in r.received] == ["[CRITICAL] source-down: nat-b is down"]
    assert r.paths == [f"/hook/{TOKEN}"]  # the secret parts did reach the receiver ...
    for path in ("/", "/users/ada/", "/users/nobody/", "/alerts/"):
        html = (await staff_client.get(path)).content.decode()
        assert 'data-firing="1"' in html and 'data-severity="critical"' in html and "1 alert firing" in html, path
    html = (await staff_client.get("/alerts/")).content.decode()
    assert "source-down" in html and "nat-b" in html and "firing sent" in html
    assert '<a href="/alerts/" aria-current="page">Alerts</a>' in html  # the page links: this page is current
    assert "JSON: json://ops:****@127.0.0.1" in html
    assert SECRET not in html and TOKEN not in html  # ... and never reach a page
    # Every frame carries the count, worded, for the header's script.
    first = await services.feed_first_frame(services.feed_subscribe("test-channel", spec=ViewSpec()))
    assert first is not None
    alerts = json.loads(first[0])["alerts"]
    assert alerts == {"firing": 1, "silenced": 0, "severity": "critical", "words": "1 alert firing", "known": True}


async def test_alerts_page_test_button_reports_each_route(staff_client, alerts_to, receiver):
    good = receiver()
    down = receiver()
    down.stop()
    alerts_to(good.url)
    await sync_to_async(rule_set)("user-stuck", routes=down.url)
    response = await staff_client.post("/alerts/test", follow=True)
    html = response.content.decode()
    assert f"JSON: json://127.0.0.1:{good.port}/…: sent." in html
    assert f"JSON: json://127.0.0.1:{down.port}/…: failed" in html
    assert [m["title"] for m in good.received] == ["[TEST] usermetrics alert route"]
    assert await Delivery.objects.filter(kind="test").acount() == 2


async def test_alerts_page_and_test_send_are_staff_only(plain_user, receiver, alerts_to):
    r = receiver()
    alerts_to(r.url)
    anonymous = AsyncClient()
    assert (await anonymous.get("/alerts/"))["Location"] == "/admin/login/?next=/alerts/"
    plain = AsyncClient()
    await plain.aforce_login(plain_user)
    assert (await plain.get("/alerts/")).status_code == 302
    assert (await plain.post("/alerts/test")).status_code == 302
    assert (await AsyncClient().get("/alerts/test")).status_code == 405  # a test send is a POST
    assert r.requests == 0
