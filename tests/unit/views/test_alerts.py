"""Alerts where people see them: the admin's rule and silence forms, the alerts page, the header count, /metrics,
the test send (button and ``sendtestalert``), and secrets in routes never shown or logged."""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.test import AsyncClient
from prometheus_client.parser import text_string_to_metric_families

from tests.support.alert_helpers import rule_set, settle
from tests.support.factories import BASE_TIME, ManualClock, StaticSource, usage
from usermetrics import services
from usermetrics.alerts.delivery import route_label, scrub, send
from usermetrics.alerts.messages import probe_message
from usermetrics.models import AlertRule, Delivery, Silence
from usermetrics.selection import ViewSpec

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_rules")]

SECRET = "s3cr3t-pass-word"
TOKEN = "tok-4f9a8b7c6d5e"


def secret_url(port: int) -> str:
    """A route to the receiver whose password, path and header are secrets."""
    return f"json://ops:{SECRET}@127.0.0.1:{port}/hook/{TOKEN}?+X-Api-Key={TOKEN}"


@pytest.fixture
async def admin_async(django_user_model) -> AsyncClient:
    user = await sync_to_async(django_user_model.objects.create_superuser)("root", "root@example.com", "pw-root-123")
    client = AsyncClient()
    await client.aforce_login(user)
    return client


async def firing_source_down(producer_with_alerts, *, url: str | None = None) -> None:
    """A producer whose one source never answers: source-down fires at once (for 0)."""
    await sync_to_async(rule_set)("source-down", for_seconds=0, clear_seconds=0)
    source = StaticSource("nat-b", [])
    source.error = RuntimeError("boom")
    producer = producer_with_alerts([StaticSource("nat-a", [usage("ada")]), source], clock=ManualClock(BASE_TIME))
    await producer.tick()
    await settle(producer)
    await producer.tick()  # the next board carries the count worked out after the first


async def test_alerts_admin_creates_and_edits_a_rule_without_showing_its_routes(admin_async, receiver):
    url = secret_url(receiver().port)
    form = {
        "name": "many-users",
        "kind": "users_total",
        "enabled": "on",
        "severity": "critical",
        "threshold": "",
        "for_seconds": "60",
        "clear_seconds": "30",
        "remind_seconds": "0",
        "description": "Capacity planning.",
        "routes_new": url,
    }
    response = await admin_async.post("/admin/usermetrics/alertrule/add/", form)
    assert response.status_code == 200 and "This kind of rule needs a threshold." in response.content.decode()
    response = await admin_async.post(
        "/admin/usermetrics/alertrule/add/", {**form, "threshold": "500", "routes_new": "nonsense://x\n" + url}
    )
    html = response.content.decode()
    assert "Not an Apprise URL on line 1." in html and SECRET not in html and TOKEN not in html
    response = await admin_async.post("/admin/usermetrics/alertrule/add/", {**form, "threshold": "500"})
    assert response.status_code == 302
    rule = await AlertRule.objects.aget(name="many-users")
    assert (rule.kind, rule.threshold, rule.severity, rule.routes) == ("users_total", 500.0, "critical", url)

    page = (await admin_async.get(f"/admin/usermetrics/alertrule/{rule.pk}/change/")).content.decode()
    assert "JSON: json://ops:****@127.0.0.1" in page and SECRET not in page and TOKEN not in page
    # An edit that leaves the routes empty keeps them; the checkbox clears them.
    edit = {**form, "threshold": "800", "routes_new": ""}
    assert (await admin_async.post(f"/admin/usermetrics/alertrule/{rule.pk}/change/", edit)).status_code == 302
    await rule.arefresh_from_db()
    assert rule.threshold == 800.0 and rule.routes == url
    edit["routes_clear"] = "on"
    assert (await admin_async.post(f"/admin/usermetrics/alertrule/{rule.pk}/change/", edit)).status_code == 302
    await rule.arefresh_from_db()
    assert rule.routes == ""
    listing = (await admin_async.get("/admin/usermetrics/alertrule/")).content.decode()
    for name in ("source-down", "source-stale", "user-stuck", "user-erroring", "many-users"):
        assert name in listing


async def test_alerts_admin_adds_a_silence_and_remembers_who(admin_async):
    rule = await AlertRule.objects.aget(name="user-stuck")
    form = {
        "rule": rule.pk,
        "user_id": "ada",
        "source": "",
        "starts_at_0": "2026-01-01",
        "starts_at_1": "12:00:00",
        "ends_at_0": "2100-01-01",
        "ends_at_1": "12:00:00",
        "comment": "known issue",
    }
    assert (await admin_async.post("/admin/usermetrics/silence/add/", form)).status_code == 302
    silence = await Silence.objects.aget()
    assert (silence.user_id, silence.created_by, silence.rule_id) == ("ada", "root", rule.pk)


def families(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_alerts_metrics_shows_the_firing_gauge_per_rule(producer_with_alerts, alerts_to, receiver, settings):
    alerts_to(receiver().url)
    await firing_source_down(producer_with_alerts)
    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_TOKENS": ["scrape-" + "m" * 30]}
    scraped = await AsyncClient().get("/metrics", headers={"Authorization": "Bearer scrape-" + "m" * 30})
    metrics = families(scraped.content.decode())
    firing = metrics["usermetrics_alerts_firing"]
    assert firing[(("rule", "source-down"),)] == 1.0
    assert firing[(("rule", "user-stuck"),)] == 0.0
    # One series per enabled rule, labelled by the rule only: never by user or source.
    enabled = await sync_to_async(lambda: set(AlertRule.objects.filter(enabled=True).values_list("name", flat=True)))()
    assert {dict(k)["rule"] for k in firing} == enabled and all(len(k) == 1 for k in firing)


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


def test_alerts_sendtestalert_command_prints_each_route(settings, receiver):
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
