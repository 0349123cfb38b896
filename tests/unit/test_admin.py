"""The admin: the identity form (the credential never stored or shown), the alert rule and silence forms,
the index's link to the dashboard."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from tests.support.alert_helpers import SECRET, TOKEN, secret_url
from tests.support.factories import NAT_REPORTED
from usermetrics import services
from usermetrics.identities import identity_labels, identity_register
from usermetrics.models import AlertRule, Identity, Silence


@pytest.fixture
async def admin_async(django_user_model) -> AsyncClient:
    user = await sync_to_async(django_user_model.objects.create_superuser)("root", "root@example.com", "pw-root-123")
    client = AsyncClient()
    await client.aforce_login(user)
    return client


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded_rules")
async def test_admin_creates_and_edits_a_rule_without_showing_its_routes(admin_async, receiver):
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


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded_rules")
async def test_admin_adds_a_silence_and_remembers_who(admin_async):
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


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_label_cache")
def test_identity_admin_add_derives_the_id_and_stores_no_secret(admin_client):
    url = reverse("admin:usermetrics_identity_add")
    page = admin_client.get(url)
    assert page.status_code == 200 and b'name="value"' in page.content
    response = admin_client.post(url, {"label": "Carol", "kind": "jwt_sub", "value": "carol"})
    assert response.status_code == 302, response.content
    identity = Identity.objects.get()
    assert (identity.label, identity.kind, identity.user_id) == ("Carol", "jwt_sub", NAT_REPORTED[2][2])
    assert identity_labels() == {NAT_REPORTED[2][2]: "Carol"}
    # Search by label in the admin list.
    listing = admin_client.get(reverse("admin:usermetrics_identity_changelist"), {"q": "caro"})
    assert NAT_REPORTED[2][2].encode() in listing.content
    # Renaming needs no credential; the credential is never shown back.
    change = reverse("admin:usermetrics_identity_change", args=[identity.pk])
    assert b"carol" not in admin_client.get(change).content.replace(b"Carol", b"")
    response = admin_client.post(change, {"label": "Carol C.", "kind": "jwt_sub", "value": ""})
    assert response.status_code == 302
    assert identity_labels() == {NAT_REPORTED[2][2]: "Carol C."}


@pytest.mark.django_db
@pytest.mark.usefixtures("fresh_label_cache")
def test_identity_admin_requires_credential_and_refuses_duplicates(admin_client):
    identity_register(label="Bob", kind="api_key", value="key-bob")
    url = reverse("admin:usermetrics_identity_add")
    missing = admin_client.post(url, {"label": "X", "kind": "cookie", "value": ""})
    assert missing.status_code == 200 and b"Enter the credential" in missing.content
    duplicate = admin_client.post(url, {"label": "Bobby", "kind": "api_key", "value": "key-bob"})
    assert duplicate.status_code == 200 and b"already registered as" in duplicate.content
    bad = admin_client.post(url, {"label": "D", "kind": "basic", "value": "nocolon"})
    assert bad.status_code == 200 and b"user:password" in bad.content
    assert b"nocolon" not in bad.content  # the password field is not rendered back


@pytest.mark.django_db(transaction=True)
async def test_admin_index_links_to_the_dashboard(source, staff_client):
    html = (await staff_client.get("/admin/")).content.decode()
    assert 'href="/">Live dashboard</a>' in html


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("seeded_rules")
async def test_admin_offers_the_companions_kinds_and_asks_the_p95_rule_for_its_threshold(admin_async):
    page = (await admin_async.get("/admin/usermetrics/alertrule/add/")).content.decode()
    assert 'value="user_latency_p95"' in page and 'value="user_saturated"' in page
    form = {
        "name": "slow-users",
        "kind": "user_latency_p95",
        "enabled": "on",
        "severity": "warning",
        "threshold": "",
        "for_seconds": "300",
        "clear_seconds": "30",
        "remind_seconds": "0",
        "description": "",
        "routes_new": "",
    }
    response = await admin_async.post("/admin/usermetrics/alertrule/add/", form)
    assert response.status_code == 200 and "This kind of rule needs a threshold." in response.content.decode()
    added = await admin_async.post("/admin/usermetrics/alertrule/add/", {**form, "threshold": "2500"})
    assert added.status_code == 302
    saturated = {**form, "name": "queued-users", "kind": "user_saturated"}  # no threshold needed
    assert (await admin_async.post("/admin/usermetrics/alertrule/add/", saturated)).status_code == 302
    kinds = await sync_to_async(lambda: dict(AlertRule.objects.values_list("name", "kind")))()
    assert kinds["slow-users"] == "user_latency_p95" and kinds["queued-users"] == "user_saturated"


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_admin_lists_actions_read_only_and_each_is_a_recent_action(acting, admin_async, django_user_model):
    root = await django_user_model.objects.aget(username="root")
    done = await services.user_action_do(
        user_id="ada", action="evict", by_user=root, by_label="root", reason="stuck for an hour"
    )
    listing = (await admin_async.get("/admin/usermetrics/useraction/?q=ada")).content.decode()
    assert "stuck for an hour" in listing and "no answer" in listing
    assert "/admin/usermetrics/useraction/add/" not in listing
    assert (await admin_async.get("/admin/usermetrics/useraction/add/")).status_code == 403
    change = await admin_async.get(f"/admin/usermetrics/useraction/{done.pk}/change/")
    assert change.status_code == 200 and 'type="submit" value="Save"' not in change.content.decode()
    assert (
        await admin_async.post(f"/admin/usermetrics/useraction/{done.pk}/delete/", {"post": "yes"})
    ).status_code == 403
    index = (await admin_async.get("/admin/")).content.decode()
    assert "Recent actions" in index and str(done) in index
