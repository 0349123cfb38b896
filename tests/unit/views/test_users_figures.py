"""The NAT companions' figures on the pages: the list's p95 and Queued, the detail's panels, the sources' workers."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.test import AsyncClient

from tests.support.html import row_ids

pytestmark = pytest.mark.django_db(transaction=True)


def cell(html: str, user_id: str, field: str) -> tuple[str, str]:
    """The ``<td>`` of ``field`` in the row of ``user_id``: its attributes and its text."""
    row = re.search(rf'<tr data-user-id="{user_id}".*?</tr>', html, re.S).group(0)
    found = re.search(rf'<td([^>]*data-field="{field}"[^>]*)>(.*?)</td>', row, re.S)
    return found.group(1), unescape(found.group(2))


async def test_views_list_shows_p95_and_queued_with_no_value_without_a_companion(companion, staff_client):
    html = (await staff_client.get("/")).content.decode()
    assert '<a href="?sort=-p95_ms" data-sort="p95_ms" title="95th percentile' in html
    assert 'data-sort="queued"' in html
    attrs, text = cell(html, "ada", "p95_ms")
    assert text.endswith(" ms") and 750 < float(text.split()[0]) <= 1000
    assert 'title="p50 ' in attrs and " · p99 " in unescape(attrs)
    assert cell(html, "ada", "queued") == (' class="um-num um-has-queue" data-field="queued"', "2")
    assert cell(html, "bob", "queued")[1] == "0"
    assert cell(html, "cy", "p95_ms") == (' class="um-num" data-field="p95_ms"', "\u2013")  # no companion
    assert cell(html, "cy", "queued")[1] == "\u2013"


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("-p95_ms", ["ada", "bob", "cy"]),  # a user without a companion sorts below every figure
        ("p95_ms", ["cy", "bob", "ada"]),
        ("-queued", ["ada"]),  # bob's 0 and cy's none tie after her
    ],
)
async def test_views_list_sorts_by_the_companions_figures(companion, staff_client, sort, order):
    html = (await staff_client.get(f"/?sort={sort}")).content.decode()
    assert row_ids(html)[: len(order)] == order


async def test_views_detail_shows_latency_queue_and_workers(companion, staff_client):
    html = unescape((await staff_client.get("/users/ada/")).content.decode())
    assert re.search(r'id="um-latency-module">', html) and re.search(r'id="um-queue-module">', html)
    assert re.search(r'data-figure="requests">100<', html)
    assert re.search(r'data-figure="queued">2<', html) and 'um-has-queue" data-figure="queued"' in html
    assert re.search(r'data-figure="max_concurrency">16<', html)
    assert re.search(r'data-figure="wait_ms">300 ms<', html) and re.search(r'data-figure="run_ms">900 ms<', html)
    assert re.search(r'data-figure="wait_share">25.0%<', html)
    assert '<th scope="row">\u2264 50 ms</th>' in html and 'value="90"' in html and "\u2264 1 s" in html
    assert '<span id="um-workers-words">on 2 workers</span>' in html
    assert '<span class="um-worker">nat-1:101</span>, <span class="um-worker">nat-1:102</span>' in html


async def test_views_detail_hides_the_panels_without_a_companion(companion, staff_client):
    html = (await staff_client.get("/users/cy/")).content.decode()
    assert 'id="um-latency-module" hidden' in html and 'id="um-queue-module" hidden' in html
    assert 'id="um-workers" hidden' in html


async def test_views_sources_lists_a_companion_streams_workers(companion, staff_client):
    html = unescape((await staff_client.get("/sources/")).content.decode())
    table = re.search(r'<table class="um-table um-workers-table".*?</table>', html, re.S).group(0)
    rows = re.findall(r'<tr data-worker="([^"]+)"', table)
    assert rows == ["nat-1:101", "nat-1:99"]
    live = re.search(r'<tr data-worker="nat-1:101".*?</tr>', table, re.S).group(0)
    for text in ("1.9.0", "per_user_echo", ">live<", "1 s ago", ">40<", ">3<", ">1<"):
        assert text in live
    assert ">ended<" in table and "1 min ago" in table
    assert "garbage: 2" in html
    assert html.count("um-workers-table") == 1  # the plain source has no workers table


async def test_views_figures_pages_need_staff(companion):
    client = AsyncClient()
    await client.aforce_login(await User.objects.acreate(username="plain"))
    assert (await client.get("/users/ada/")).status_code == 302


async def test_views_list_filters_the_saturated_users(companion, staff_client):
    html = (await staff_client.get("/")).content.decode()
    assert 'data-state-value="saturated">Saturated</a>' in html
    assert row_ids((await staff_client.get("/?state=saturated")).content.decode()) == ["ada"]
