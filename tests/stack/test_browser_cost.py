"""Browser: the Tokens and cost panel of a demo user, live (real Daphne and Chromium, the embedded demo).

The demo's made-up models are priced for the test only (``USERMETRICS_PRICES``: demo-large; demo-small
left without a price). A busy extra demo user calls both; its panel shows a cost for one model,
"no price" for the other and an incomplete total, and its counts change as the frames arrive. The
panel is saved as screenshots (light and dark, 1,366 px) to ``var/screenshots/`` or ``USERMETRICS_SCREENSHOTS``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import PASSWORD, WAIT_MS, admin_login, needs_chromium
from tests.support.daphne import Daphne, http_get, manage, server_env, serving, wait_until
from tests.support.machine import ROOT

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [needs_chromium]

TOKEN = "browser-cost-token-" + "k" * 24
PAYER = "payer@example.com"  # seed 0 gives this extra demo user 70 % of its calls on demo-large
PRICES = {"demo-large": {"prompt": 3, "completion": 15, "cached": 0.3}}
SHOTS = Path(os.environ.get("USERMETRICS_SCREENSHOTS", ROOT / "var" / "screenshots"))
MONEY = re.compile(r"^\$\d[\d,]*(\.\d{2,9})?$")


def both_models(base: str) -> bool:
    """Whether the payer's API document counts calls of both demo models yet."""
    code, body = http_get(f"{base}/api/users/{PAYER}", TOKEN)
    return code == 200 and len((json.loads(body).get("llm") or {}).get("by_model", {})) == 2


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """Daphne on the embedded demo (8 users and the busy payer), demo-large priced."""
    var = tmp_path_factory.mktemp("cost-var")
    env = server_env(
        var,
        USERMETRICS_DEMO="1",  # the test settings turn it off for every other test
        USERMETRICS_DEMO_USERS="8",
        USERMETRICS_DEMO_SEED="0",
        USERMETRICS_DEMO_EXTRA_USERS=PAYER,
        USERMETRICS_PRICES=json.dumps(PRICES),
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_API_TOKENS=TOKEN,
        DASHBOARD_ADMIN_PASSWORD=PASSWORD,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "ensureadmin")
    with serving(env, var / "daphne.log") as daphne:
        wait_until(lambda: both_models(daphne.base), what="the payer's calls on both demo models")
        yield daphne
        assert "Traceback" not in daphne.log(), daphne.log()[-3000:]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_browser_cost_panel_live_with_a_priced_and_an_unpriced_model(demo_server, browser, scheme):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=scheme)
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        admin_login(page, demo_server.base)
        page.goto(f"{demo_server.base}/users/{PAYER}/")
        panel = page.locator("#um-cost-module")
        page.wait_for_selector('#um-cost-module[data-state="calls"] tr[data-model="demo-small"]')
        cost_of = "tr[data-model='{}'] td:last-child"
        assert panel.locator(cost_of.format("demo-small")).text_content() == "no price"
        assert MONEY.match(panel.locator(cost_of.format("demo-large")).text_content())
        assert panel.locator("#um-cost-currency").text_content() == " (USD)"
        total = panel.locator("#um-cost-total")
        assert re.match(r"^\$\d[\d,]*(\.\d{2,9})? \+ 1 unpriced model$", total.text_content()), total.text_content()
        # Live: the busy payer's calls move as the frames arrive, written by cost.js.
        calls = panel.locator('[data-total="calls"]')
        before = calls.get_attribute("title")
        page.wait_for_function(
            "before => document.querySelector('[data-total=\"calls\"]').title !== before", arg=before
        )
        assert int(calls.get_attribute("title")) > int(before)
        assert not panel.locator("[data-empty]:not([hidden])").count()
        SHOTS.mkdir(parents=True, exist_ok=True)
        panel.scroll_into_view_if_needed()
        panel.screenshot(path=str(SHOTS / f"cost-panel-1366-{scheme}.png"))
        page.screenshot(path=str(SHOTS / f"cost-page-1366-{scheme}.png"), full_page=True)
    finally:
        context.close()
