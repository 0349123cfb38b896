"""Browser: the NAT companions' figures live on the pages (real Daphne, Redis, Chromium).

One Daphne reads a companion stream of fake NAT workers (``FakeCompanions``: two workers, six
users, in the Redis of ``REDIS_URL``) and a plain fake NAT server (no companion: its users have no
figures). The list's p95 and Queued cells, the detail page's panels and the sources page's
workers table are checked once the page's script has written them from the feed or the API.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator

import pytest

from tests.support.browser import PASSWORD, WAIT_MS, admin_login, needs_chromium
from tests.support.daphne import Daphne, http_get, manage, server_env, serving, wait_until
from tests.support.fake_companions import LLM_MODELS, FakeCompanions
from tests.support.fake_nat import FakeNat
from tests.support.machine import ROOT

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [needs_chromium, pytest.mark.redis]

TOKEN = "browser-figures-token-" + "f" * 24
DEPLOYMENT = f"figures{os.getpid()}"  # its own stream, whatever else uses this Redis
COMPANION_USER = "user-000001@example.com"
SATURATED_USER = "user-000000@example.com"
PLAIN_USER = "nat-000000@example.com"  # of the plain NAT server: no companion
NO_VALUE = "\u2013"
AXE = ROOT / "tests" / "support" / "vendor" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def figures_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """Daphne over a companion stream of two fake workers and a plain fake NAT server."""
    companions = FakeCompanions(
        os.environ["REDIS_URL"],
        users=6,
        deployment=DEPLOYMENT,
        workers=2,
        moving=0.5,
        interval=0.5,
        saturated=1,
        llm=True,
    ).start()
    nat = FakeNat(3, moving=1.0, prefix="nat").start()
    var = tmp_path_factory.mktemp("figures-var")
    env = server_env(
        var,
        NAT_SOURCES=f"{DEPLOYMENT}={os.environ['REDIS_URL']},plain={nat.url}",
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="1",
        USERMETRICS_API_TOKENS=TOKEN,
        DASHBOARD_ADMIN_PASSWORD=PASSWORD,
        # The companions' first model has a price, the second none (``LLM_MODELS``).
        USERMETRICS_PRICES=json.dumps({LLM_MODELS[0]: {"prompt": 0.15, "completion": 0.6}}),
    )
    try:
        manage(env, "migrate", "--noinput", "-v", "0")
        manage(env, "ensureadmin")
        with serving(env, var / "daphne.log") as daphne:
            wait_until(
                lambda: http_get(daphne.base + "/api/users/" + COMPANION_USER, TOKEN)[0] == 200,
                what="the companion's users on a published board",
            )
            yield daphne
    finally:
        nat.stop()
        companions.stop()


@pytest.fixture
def open_tab(figures_server: Daphne, browser: object) -> Iterator[Callable[..., object]]:
    """``open_tab(scheme="light", **context_options)``: a logged-in tab at 1,366 px, on the list."""
    contexts: list[object] = []

    def make(scheme: str = "light", **options: object) -> object:
        context = browser.new_context(viewport={"width": 1366, "height": 900}, color_scheme=scheme, **options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        tab = context.new_page()
        admin_login(tab, figures_server.base)
        return tab

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def page(open_tab: Callable[..., object]) -> object:
    """A logged-in tab at 1,366 px, light."""
    return open_tab()


def cell_text(tab: object, user_id: str, field: str) -> str:
    return tab.locator(f'#um-rows tr[data-user-id="{user_id}"] [data-field="{field}"]').inner_text()


def window_p95(base: str, user_id: str) -> float | None:
    """The user's p95 over the list's default window, as the page's rates fetch reads it (None: none yet)."""
    code, body = http_get(f"{base}/api/list/window?window=1h&user_id={user_id}", TOKEN)
    entry = json.loads(body)["users"].get(user_id) if code == 200 else None
    return entry["stats"].get("p95_ms") if entry else None


def test_browser_figures_list_cells_written_from_frames_and_sortable(page, figures_server):
    # The window's p95 needs two samples of a moving user recorded. The page renders the window's cells
    # and fetches them again every 30 s, or soon when other rows arrive (the sort below may leave the
    # same rows in the same order): load it once the p95 is there, or its cell says "none" for 30 s.
    wait_until(lambda: window_p95(figures_server.base, COMPANION_USER) is not None, what="a recorded window p95")
    page.reload()
    page.wait_for_selector("#um-conn[data-state=live]")
    # setValue marks what the script wrote (data-v): the cells are kept by the feed, not left as served.
    page.wait_for_selector(
        f'#um-rows tr[data-user-id="{COMPANION_USER}"] [data-field="p95_ms"][data-v]', state="attached"
    )
    assert re.fullmatch(r"[\d.]+ (ms|s)", cell_text(page, COMPANION_USER, "p95_ms"))
    assert cell_text(page, COMPANION_USER, "queued") == "0"
    # user 0 has 2 requests waiting on its semaphore: in the warning colour.
    assert cell_text(page, SATURATED_USER, "queued") == "2"
    assert page.locator(f'#um-rows tr[data-user-id="{SATURATED_USER}"] td.um-has-queue').count() == 1
    title = page.locator(f'#um-rows tr[data-user-id="{COMPANION_USER}"] [data-field="p95_ms"]').get_attribute("title")
    assert title.startswith("p50 ") and " · p99 " in title
    # A user of the plain NAT server has no figures: a dash, not zero.
    assert cell_text(page, PLAIN_USER, "p95_ms") == NO_VALUE and cell_text(page, PLAIN_USER, "queued") == NO_VALUE
    # The lifetime p95 gives way to the window's by default (the history is on): the chooser shows it.
    assert page.locator("th[data-field=p95_ms]").is_hidden() and page.locator("th[data-field=w_p95_ms]").is_visible()
    page.click("#um-columns summary")
    page.check("#um-columns input[value=p95_ms]")
    page.click("a[data-sort=p95_ms]")
    page.wait_for_function("() => new URL(location.href).searchParams.get('sort') === '-p95_ms'")
    page.wait_for_function(
        "() => { const ids = Array.from(document.querySelectorAll('#um-rows tr')).map(r => r.dataset.userId);"
        " return ids.length === 9 && ids.slice(0, 6).every(id => id.startsWith('user-'))"
        " && ids.slice(6).every(id => id.startsWith('nat-')); }"
    )
    # Rows that moved get their window fetched again: the window's p95 (from the recorded histograms)
    # is written by the script in the same words; a user without a companion has none.
    page.wait_for_function(
        f"() => /^[\\d.]+ (ms|s)$/.test(document.querySelector("
        f"'#um-rows tr[data-user-id=\"{COMPANION_USER}\"] [data-field=w_p95_ms]').textContent)"
    )
    assert cell_text(page, PLAIN_USER, "w_p95_ms") == NO_VALUE


def window_tokens(base: str, user_id: str) -> int:
    """The user's tokens over the list's default window, as the page's rates fetch reads it (0: none yet)."""
    code, body = http_get(f"{base}/api/list/window?window=1h&user_id={user_id}", TOKEN)
    entry = json.loads(body)["users"].get(user_id) if code == 200 else None
    return (entry.get("tokens") or {}).get("total_tokens", 0) if entry else 0


def test_browser_figures_list_tokens_and_cost_sorted_from_the_history(page, figures_server):
    # The last user moves, and spends the most per request: once it has, it leads the sort by cost.
    last = "user-000005@example.com"
    wait_until(lambda: window_tokens(figures_server.base, last) > 0, what="recorded tokens")
    page.goto(figures_server.base + "/?sort=-w_cost")
    page.wait_for_selector("#um-conn[data-state=live]")
    ids = page.eval_on_selector_all("#um-rows tr", "rows => rows.map(r => r.dataset.userId)")
    assert ids[0].startswith("user-") and all(i.startswith("nat-") for i in ids[6:])  # no companion: last
    assert page.locator("th[data-field=w_cost]").get_attribute("aria-sort") == "descending"
    assert re.fullmatch(r"\$[\d.,]+|≥ \$[\d.,]+", cell_text(page, ids[0], "w_cost"))
    assert re.fullmatch(r"[\d.,]+[kMB]?", cell_text(page, ids[0], "w_tokens"))
    assert cell_text(page, PLAIN_USER, "w_cost") == NO_VALUE
    # The overview's cost panel links the top spenders to their pages.
    assert page.locator("#um-spend-title").is_visible()
    assert page.locator(".um-spend-top tbody tr[data-top-user] a").count() >= 1


def test_browser_figures_detail_panels_live(page, figures_server):
    page.goto(figures_server.base + f"/users/{COMPANION_USER}/")
    page.wait_for_selector("#um-conn[data-state=live]")
    page.wait_for_selector('[data-figure="p95_ms"][data-v]')
    assert page.locator("#um-latency-module").is_visible() and page.locator("#um-queue-module").is_visible()
    assert re.fullmatch(r"[\d.]+ (ms|s)", page.locator('[data-figure="p99_ms"]').inner_text())
    assert int(page.locator('[data-figure="requests"]').inner_text()) > 0
    assert page.locator("#um-buckets tr").count() >= 1 and page.locator("#um-buckets meter").count() >= 1
    assert page.locator("#um-workers-words").inner_text() == "on 1 worker"
    assert re.fullmatch(r"fake:100[01]", page.locator("#um-worker-labels").inner_text())
    page.goto(figures_server.base + f"/users/{PLAIN_USER}/")
    page.wait_for_selector("#um-conn[data-state=live]")
    assert page.locator("#um-latency-module").is_hidden() and page.locator("#um-workers").is_hidden()


def test_browser_figures_sources_page_lists_the_workers(page, figures_server):
    page.goto(figures_server.base + "/sources/")
    page.wait_for_selector("#um-conn[data-state=live]")
    workers = page.locator(f'tr[data-workers-of="{DEPLOYMENT}"] tr[data-worker]')
    assert sorted(workers.all_inner_texts())[0].startswith("fake:1000")
    assert workers.count() == 2
    # Rebuilt by the script from /api/sources: its times are in the browser's zone, with the offset.
    page.wait_for_function(
        f"() => document.querySelector('tr[data-workers-of=\"{DEPLOYMENT}\"] tr[data-worker] td[data-time]')"
        ".title.includes('UTC+')"
    )
    assert "live" in workers.first.inner_text() and page.locator('tr[data-workers-of="plain"]').count() == 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_browser_figures_axe_finds_nothing_serious(open_tab, figures_server, scheme):
    # axe-core is injected by the test only (bypass_csp: the page's CSP would refuse it).
    tab = open_tab(scheme, bypass_csp=True)
    found = {}
    for path, ready in (
        ("/", f'#um-rows tr[data-user-id="{SATURATED_USER}"] [data-field="queued"][data-v]'),
        (f"/users/{SATURATED_USER}/", '[data-figure="p95_ms"][data-v]'),
        ("/sources/", f'tr[data-workers-of="{DEPLOYMENT}"] tr[data-worker]'),
    ):
        tab.goto(figures_server.base + path)
        tab.wait_for_selector(ready)
        tab.add_script_tag(path=str(AXE))
        violations = tab.evaluate("() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
        found[path] = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]])
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
    assert all(not v for v in found.values()), found
