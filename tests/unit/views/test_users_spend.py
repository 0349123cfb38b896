"""The list's Tokens and Cost over the window: cells, "no price", sorts from the history, the rows' window API."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape

import pytest
from asgiref.sync import sync_to_async

from tests.support.factories import CompanionSource, StaticSource
from tests.support.factories import usage as listed_usage
from tests.support.history_helpers import recorder, snapshot, usage
from tests.support.html import row_ids
from usermetrics.clock import utcnow
from usermetrics.extras import Extras

pytestmark = pytest.mark.django_db(transaction=True)

PRICES = {"gpt": {"prompt": 2, "completion": 8}}


def u(prompt: int, completion: int) -> tuple[int, ...]:
    return (1, prompt, completion, 0, 0, prompt + completion)


@pytest.fixture
async def spending(install_service, settings):
    """ada: 1.5 M gpt tokens ($3.50 + unpriced); bob: 10 k gpt tokens; eve: unpriced only; cy: no companion."""
    settings.USERMETRICS = {**settings.USERMETRICS, "PRICES": PRICES}
    now = utcnow()
    llm = {
        "ada": Extras(llm=(("gpt", u(1_000_000, 187_500)), ("local", u(300_000, 12_500)))),
        "bob": Extras(llm=(("gpt", u(8_000, 2_000)),)),
        "eve": Extras(llm=(("local", u(40_000, 2_000)),)),
    }
    people = [usage(n, total=1) for n in ("ada", "bob", "eve", "cy")]
    rec = recorder()
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=5), []))
    await sync_to_async(rec.record)(snapshot(now - timedelta(minutes=2), people, extras=llm))
    stream = CompanionSource("nat", [listed_usage(n, requests=1) for n in ("ada", "bob", "eve")], llm)
    await install_service([stream, StaticSource("plain", [listed_usage("cy", requests=1)])], interval=3600)


def cell(html: str, user_id: str, field: str) -> tuple[str, str]:
    row = re.search(rf'<tr data-user-id="{user_id}".*?</tr>', html, re.S).group(0)
    found = re.search(rf'<td([^>]*data-field="{field}"[^>]*)>(.*?)</td>', row, re.S)
    return unescape(found.group(1)), unescape(found.group(2))


async def test_views_list_shows_window_tokens_and_cost(spending, staff_client):
    html = (await staff_client.get("/")).content.decode()
    assert 'data-sort="w_tokens"' in html and 'data-sort="w_cost"' in html
    attrs, tokens = cell(html, "ada", "w_tokens")
    assert tokens == "1.5M" and "1,500,000 tokens: 1,300,000 prompt, 200,000 completion; 2 LLM calls" in attrs
    attrs, cost = cell(html, "ada", "w_cost")  # 1 M x $2 + 187,500 x $8 per million; "local" has no price
    assert cost == "\u2265 $3.50" and "+312,500 tokens unpriced" in attrs and "1,500,000 tokens: " in attrs
    assert cell(html, "bob", "w_cost")[1] == "$0.03"
    assert cell(html, "eve", "w_cost")[1] == "no price"
    assert cell(html, "cy", "w_tokens")[1] == cell(html, "cy", "w_cost")[1] == "\u2013"  # no companion


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("-w_cost", ["ada", "bob", "eve", "cy"]),  # eve's 0 (no price) before cy, who has none at all
        ("w_cost", ["eve", "bob", "ada", "cy"]),
        ("-w_tokens", ["ada", "eve", "bob", "cy"]),
    ],
)
async def test_views_list_sorts_by_the_windows_tokens_and_cost(spending, staff_client, sort, order):
    html = (await staff_client.get(f"/?sort={sort}")).content.decode()
    assert row_ids(html) == order
    assert 'aria-sort="' in re.search(rf'<th[^>]*data-field="{sort.lstrip("-")}"[^>]*>', html).group(0)


@pytest.mark.parametrize("sort", ["-w_cost", "w_cost", "-w_tokens"])
async def test_views_list_export_comes_in_the_pages_order_of_the_windows_tokens_and_cost(spending, staff_client, sort):
    page = row_ids((await staff_client.get(f"/?sort={sort}")).content.decode())
    response = await staff_client.get("/api/export/users.json", {"sort": sort})
    body = b"".join([chunk async for chunk in response.streaming_content])
    assert [row["user_id"] for row in json.loads(body)] == page


async def test_views_list_window_api_carries_tokens_and_cost(spending, staff_client):
    response = await staff_client.get("/api/list/window", {"user_id": ["ada", "cy"], "window": "1h"})
    users = response.json()["users"]
    ada = users["ada"]["tokens"]
    assert (ada["prompt_tokens"], ada["completion_tokens"], ada["pricing"]) == (1_300_000, 200_000, "partly")
    assert ada["cost"] == 3.5 and ada["unpriced_tokens"] == 312_500 and ada["by_model"]["gpt"]["llm_calls"] == 1
    assert users["cy"]["tokens"] is None


async def test_views_ended_list_sorts_by_window_cost(spending, staff_client):
    response = await staff_client.get("/?state=ended&sort=-w_cost")
    assert response.status_code == 200 and row_ids(response.content.decode()) == []


async def test_views_overview_shows_the_fleets_last_hour_and_the_top_users(spending, staff_client):
    html = unescape((await staff_client.get("/")).content.decode())
    panel = re.search(r'<section class="module um-overview um-spend".*?</section>', html, re.S).group(0)
    assert "Cost: <span" in panel and "≥ $3.53</span> in the last hour (1.6M tokens)" in panel
    assert "+354,500 tokens unpriced (models without a price)." in panel
    by_cost, by_tokens = re.findall(r"<caption>(.*?)</caption>.*?<tbody>(.*?)</tbody>", panel, re.S)
    assert by_cost[0] == "Top by cost, last 1h" and by_tokens[0] == "Top by tokens, last 1h"
    assert re.findall(r'data-top-user="([^"]+)"', by_cost[1]) == ["ada", "bob"]  # eve's tokens cost nothing known
    assert re.findall(r'data-top-user="([^"]+)"', by_tokens[1]) == ["ada", "eve", "bob"]
    assert '<a href="/users/ada/" title="ada">ada</a>' in by_cost[1]
    assert 'id="um-spend-chart"' in panel


async def test_views_overview_has_no_cost_panel_without_tokens(recorded_flags, staff_client):
    html = (await staff_client.get("/")).content.decode()
    assert "um-spend" not in html


async def test_views_history_api_carries_the_windows_tokens_and_their_series(spending, staff_client):
    doc = (await staff_client.get("/api/users/ada/history", {"window": "1h"})).json()
    assert doc["tokens"]["total_tokens"] == 1_500_000 and doc["tokens"]["cost"] == 3.5
    assert len(doc["cost_per_hour"]) == len(doc["tokens_per_min"]) == len(doc["t"])
    assert sum(v or 0 for v in doc["tokens_per_min"]) * doc["step"] / 60 == 1_500_000
    assert (await staff_client.get("/api/users/cy/history")).json()["tokens"] is None
    overview = (await staff_client.get("/api/overview/history")).json()
    assert overview["tokens"]["total_tokens"] == 1_500_000 + 10_000 + 42_000
