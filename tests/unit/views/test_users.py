"""HTML pages: staff only, every seed field, sorting/search/filter/paging as links, empty states, 404, CSP."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape, unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from tests.support.factories import BASE_TIME, StaticSource, sample_users, usage
from tests.support.html import row_ids
from usermetrics.identities import identity_register, user_id_derive

pytestmark = pytest.mark.django_db(transaction=True)


def hrefs(html: str, marker: str) -> list[str]:
    """Hrefs of links carrying ``marker`` (an attribute like ``data-page``)."""
    return [unescape(m) for m in re.findall(rf'<a href="([^"]*)" {marker}', html)]


@pytest.mark.parametrize("url", ["/", "/users/u01/"])
async def test_views_need_staff_and_send_to_admin_login(source, plain_user, url):
    response = await AsyncClient().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"
    client = AsyncClient()
    await client.aforce_login(plain_user)
    assert (await client.get(url)).status_code == 302


async def test_views_list_shows_every_user_and_field(source, staff_client):
    response = await staff_client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert row_ids(html) == [f"u{i:02d}" for i in range(12)]  # most recent activity first
    # Admin chrome: header, breadcrumbs, the user tools and the theme toggle.
    assert 'id="header"' in html and 'class="breadcrumbs"' in html and "theme-toggle" in html
    for label in ("Users", "Active now", "In-flight requests", "Requests", "Errors", "Average latency"):
        assert f'<span class="um-card-label">{label}</span>' in html
    # The sources card leads to the sources page.
    assert '<span class="um-card-label"><a href="/sources/">Sources</a></span>' in html
    assert '<span class="um-card-value" data-summary="users" title="12">12</span>' in html
    assert '<span class="um-card-value" data-summary="active" title="4">4</span>' in html
    assert '<span class="um-card-value" data-summary="errors" title="12">12</span>' in html
    for field in (
        "created_at",
        "last_activity",
        "ref_count",
        "is_active",
        "total_requests",
        "active_requests",
        "avg_latency_ms",
        "error_count",
        "per_user_functions_count",
        "per_user_function_groups_count",
        "exit_stack_size",
    ):
        assert f'data-field="{field}"' in html
    # Relative time in the cell, the exact UTC time on hover.
    u03 = BASE_TIME - timedelta(minutes=3)
    assert f'title="{u03:%Y-%m-%d %H:%M:%S}.000 UTC"' in html
    assert 'href="/users/u03/"' in html
    assert "Users 1\u201312 of 12" in html
    assert 'id="um-config"' in html  # the page's script gets its config as json_script


async def test_views_list_sort_search_filter_and_paging_keep_the_other_parameters(source, staff_client):
    html = (await staff_client.get("/?sort=user_id&page_size=5&page=2")).content.decode()
    assert row_ids(html) == ["u05", "u06", "u07", "u08", "u09"]
    pages = hrefs(html, "data-page")
    assert pages and all(parse_qs(urlsplit(h).query)["page_size"] == ["5"] for h in pages)
    assert all(parse_qs(urlsplit(h).query)["sort"] == ["user_id"] for h in pages)
    assert "page 2 of 3" in html

    html = (await staff_client.get("/?sort=-total_requests&state=idle&q=U1")).content.decode()
    assert row_ids(html) == ["u11", "u10"]
    assert "Users 1\u20132 of 2 matching (of 12)" in html
    sorts = hrefs(html, "data-sort")
    assert all(parse_qs(urlsplit(h).query).get("state") == ["idle"] for h in sorts)
    assert all(parse_qs(urlsplit(h).query).get("q") == ["U1"] for h in sorts)
    # The sorted column links to the other direction; the others start from the largest.
    assert "?sort=total_requests&q=U1&state=idle" in sorts
    assert "?sort=-error_count&q=U1&state=idle" in sorts

    html = (await staff_client.get("/?state=errors&sort=user_id")).content.decode()
    assert row_ids(html) == ["u04", "u08"]
    html = (await staff_client.get("/?state=active&sort=user_id")).content.decode()
    assert row_ids(html) == ["u00", "u03", "u06", "u09"]
    # Nonsense parameters fall back to the defaults instead of failing.
    response = await staff_client.get("/?sort=password&page=-4&page_size=abc&state=<b>")
    assert response.status_code == 200 and len(row_ids(response.content.decode())) == 12


async def test_views_list_empty_states_say_why(install_service, staff_client):
    src = StaticSource("static", [])
    service = await install_service([src], interval=3600)
    html = (await staff_client.get("/")).content.decode()
    assert "No users yet" in html and row_ids(html) == []

    src.error = ConnectionError("refused")
    await service.refresh()
    html = (await staff_client.get("/")).content.decode()
    assert "Every source is down" in html
    assert 'data-state="stale"' in html and "ConnectionError: refused" in html

    src.error = None
    src.users = sample_users()
    await service.refresh()
    html = (await staff_client.get("/?q=nobody")).content.decode()
    assert "No user matches this search and filter." in html and "Clear the search and filter" in html


async def test_views_banner_names_each_unhealthy_source(install_service, staff_client):
    healthy, flaky = StaticSource("healthy", sample_users()[:2]), StaticSource("flaky", sample_users()[2:5])
    never = StaticSource("never", [])
    never.error = TimeoutError()
    service = await install_service([healthy, flaky, never], interval=3600)
    await service.refresh()
    html = (await staff_client.get("/")).content.decode()
    banner = re.search(r'<div class="um-banner" id="um-banner" role="alert"( hidden)?>(.*?)</div>', html, re.S)
    assert banner is not None and banner.group(1) is None
    assert "<strong>never</strong> is" in banner.group(2) and "has not answered since" in banner.group(2)
    assert "flaky" not in banner.group(2) and "healthy" not in banner.group(2)

    flaky.error = ConnectionError("refused")
    await service.refresh()
    for url in ("/", reverse("usermetrics:user-detail", args=["u02"])):
        html = (await staff_client.get(url)).content.decode()
        banner = re.search(r'<div class="um-banner" id="um-banner" role="alert">(.*?)</div>', html, re.S)
        assert banner is not None, url
        text = " ".join(unescape(re.sub(r"<[^>]+>", "", banner.group(1))).split())
        assert "flaky is stale: ConnectionError: refused." in text
        assert "its 3 users show their last known values" in text
        assert "healthy" not in text

    flaky.error = never.error = None
    await service.refresh()
    html = (await staff_client.get("/")).content.decode()
    assert '<div class="um-banner" id="um-banner" role="alert" hidden>' in html


@pytest.mark.parametrize("user_id", ["a/b c", "<img src=x onerror=alert(1)>", "..", "100% sure"])
async def test_views_detail_shows_the_user_grouped(install_service, staff_client, user_id):
    await install_service([StaticSource("static", [*sample_users(), usage(user_id, active=2)])], interval=3600)
    response = await staff_client.get(reverse("usermetrics:user-detail", args=[user_id]))
    assert response.status_code == 200
    html = response.content.decode()
    for group in ("Session", "Requests", "Memory", "Reported by"):
        assert f"<h2>{group}</h2>" in html
    assert "<li>static</li>" in html
    assert "active with 2 in flight" in html
    assert "<img src=x" not in html  # the id is escaped wherever it appears
    assert f'<span class="um-user-id" id="um-user-id">{escape(user_id)}</span>' in html


async def test_views_detail_shows_each_source_record_of_a_merged_user(install_service, staff_client):
    await install_service(
        [StaticSource("nat-a", [usage("shared", requests=3)]), StaticSource("nat-b", [usage("shared", requests=4)])],
        interval=3600,
    )
    html = (await staff_client.get("/users/shared/")).content.decode()
    assert '<td class="um-num" data-field="total_requests">7</td>' in html  # the merge
    assert "<li>nat-a</li>" in html and "<li>nat-b</li>" in html
    rows = re.findall(r'<tr><th scope="row">(nat-[ab])</th><td>idle</td><td class="um-num">(\d+)</td>', html)
    assert rows == [("nat-a", "3"), ("nat-b", "4")]


async def test_views_detail_says_how_long_an_idle_user_has_left(install_service, staff_client):
    src = StaticSource("static", sample_users())
    src.per_user_workflow_timeout = timedelta(days=3650)
    await install_service([src], interval=3600)
    html = (await staff_client.get("/users/u05/")).content.decode()
    assert re.search(r'<span id="um-lifecycle">idle for [^<]+, evicted in about [^<]+</span>', html)


async def test_views_show_and_search_registered_names(install_service, staff_client):
    uid = user_id_derive(kind="api_key", value="secret-key-of-ada")
    await sync_to_async(identity_register)(label="Ada Lovelace", kind="api_key", value="secret-key-of-ada")
    await install_service([StaticSource("static", [*sample_users(), usage(uid)])], interval=3600)
    html = (await staff_client.get("/?q=LOVELACE")).content.decode()
    assert row_ids(html) == [uid]
    assert f">Ada Lovelace ({uid})</a>" in html
    html = (await staff_client.get(f"/users/{uid}/")).content.decode()
    assert '<span class="um-label">Ada Lovelace</span>' in html and f"<title>Ada Lovelace ({uid})" in html


async def test_views_detail_of_an_unknown_user_is_a_404_page(source, staff_client):
    response = await staff_client.get("/users/nobody~2Fhere/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "User not found" in html and "nobody/here" in html and 'id="header"' in html
    assert (await staff_client.get("/users/bad~escape/")).status_code == 404


async def test_views_pages_run_under_a_strict_csp(source, staff_client):
    for url in ("/", "/users/u01/", "/admin/", "/users/nobody/"):
        response = await staff_client.get(url)
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
        html = response.content.decode()
        # No inline scripts (json_script data blocks are not executed) and no inline handlers.
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+\s*=", html.replace("onerror=alert", ""))
        assert "style=" not in html
    login = await AsyncClient().get("/admin/login/")
    assert "unsafe-inline" not in login["Content-Security-Policy"]


async def test_views_list_has_one_state_filter_and_a_column_chooser(source, staff_client):
    html = (await staff_client.get("/", {"state": "active", "q": "u0"})).content.decode()
    # The links are the filter; the search form only keeps their choice.
    form = html.split('id="um-search"', 1)[1].split("</form>", 1)[0]
    assert form.count("<select") == 1 and 'id="um-page-size"' in form  # the page size, no state dropdown
    assert '<input type="hidden" id="um-state" name="state" value="active">' in html
    assert html.count('class="um-filters"') == 1
    # Fits 1,366 px by default: some columns start hidden, the chooser (script-driven) can show them.
    assert 'class="um-table um-hide-created_at um-hide-ref_count' in html
    assert '<input type="checkbox" value="created_at">' in html
    assert '<input type="checkbox" value="total_requests" checked>' in html
    assert '<th colspan="2" scope="colgroup" class="um-group um-group-session" data-group="session">' in html
