"""The detail page's Tokens and cost panel: per model, the total, "no price", and the honest empty states."""

from __future__ import annotations

import re
from html import unescape

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _panel(html: str) -> str:
    return unescape(re.search(r'<div class="module um-module um-cost".*?\n</div>', html, re.S).group(0))


async def test_views_detail_cost_panel_per_model_with_no_price_and_the_total(llm_companion, staff_client):
    panel = _panel((await staff_client.get("/users/ada/")).content.decode())
    assert 'data-state="calls"' in panel and 'Cost<span id="um-cost-currency"> (EUR)</span>' in panel
    priced = re.search(r'<tr data-model="gpt-priced">(.*?)</tr>', panel).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", priced)
    assert cells == ["3", "3,000", "600", "1,000", "200", "3,600", "\u20ac0.0093"]
    unpriced = re.search(r'<tr data-model="gpt-unpriced">(.*?)</tr>', panel).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", unpriced)[-1] == "no price" and "um-no-price" in unpriced
    total = re.search(r"<tfoot>(.*?)</tfoot>", panel).group(1)
    assert re.findall(r"<td[^>]*>([^<]*)</td>", total) == [
        "5", "3,500", "700", "1,000", "200", "4,200", "\u20ac0.0093 + 1 unpriced model"
    ]  # fmt: skip
    assert re.search(r'id="um-tool-calls">5<', panel)
    # The page shows both costs: this one at today's prices, the chart's at the prices when used; it says which.
    assert "at the prices in force now (the Cost / hour chart and the list's Cost: at the prices when the" in panel


async def test_views_detail_cost_panel_empty_states(llm_companion, staff_client):
    cy = _panel((await staff_client.get("/users/cy/")).content.decode())
    assert 'data-state="empty"' in cy and re.search(r'data-empty="empty">No LLM calls reported yet.<', cy)
    assert re.search(r'id="um-cost-table" hidden', cy)
    dan = _panel((await staff_client.get("/users/dan/")).content.decode())
    assert 'data-state="none"' in dan
    assert re.search(r'data-empty="none">No LLM calls reported: tokens need the NAT companion.<', dan)
    assert re.search(r'id="um-tool-calls-line" hidden', dan)
