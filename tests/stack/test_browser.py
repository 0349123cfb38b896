"""Browser: a real Daphne on a free loopback port, headless Chromium through Playwright, as an operator uses it.

One Daphne and one browser serve the whole module. Playwright's sync API runs in plain (non-async)
tests so that it never meets pytest-asyncio's event loop. Every wait is bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.urls import reverse

from tests.support.browser import PASSWORD, WAIT_MS, needs_chromium
from tests.support.daphne import Daphne, manage, server_env, serving
from tests.support.machine import ROOT

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium

JS_DIR = ROOT / "static" / "usermetrics" / "js"
XSS_ID = "<img src=x onerror=alert(1)>"
INTERVAL = 0.5
ENDED_ID = "left.early@example.com"
ENDED_LIFE = f"""
from datetime import timedelta
from usermetrics.clock import utcnow
from usermetrics.models import UserLife
now = utcnow()
UserLife.objects.create(user_id={ENDED_ID!r}, created_at=now - timedelta(hours=1), first_seen=now - timedelta(hours=1),
    ended_at=now - timedelta(minutes=5), last_activity=now - timedelta(minutes=6), sources="demo", total_requests=42)
"""


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """Daphne with the demo workload (plus a hostile user id), a fresh database and an admin."""
    var = tmp_path_factory.mktemp("browser-var")
    env = server_env(
        var,
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_USERS="12",
        USERMETRICS_DEMO_EXTRA_USERS=XSS_ID,
        USERMETRICS_REFRESH_INTERVAL=str(INTERVAL),
        DASHBOARD_ADMIN_PASSWORD=PASSWORD,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "ensureadmin")
    # A user that left before this server started: the history keeps it as ended.
    manage(env, "shell", "-c", ENDED_LIFE)
    with serving(env, var / "daphne.log") as daphne:
        yield daphne


class Watch:
    """Console errors, page errors and dialogs of every page of a context."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def attach(self, page: object) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"{page.url}: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

        def on_dialog(dialog: object) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)


@pytest.fixture(scope="module")
def session(demo_server: Daphne, browser: object) -> Iterator[tuple[object, Watch]]:
    """A browser context logged in through the admin login page, and what its pages report."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT_MS)
    watch = Watch()
    context.on("page", watch.attach)
    page = context.new_page()
    # The dashboard sends an anonymous visitor to the admin login, which comes back with ?next=.
    page.goto(demo_server.base + "/")
    assert "/admin/login/" in page.url and "next=/" in page.url
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(demo_server.base + "/")
    page.close()
    try:
        yield context, watch
    finally:
        context.close()


@pytest.fixture
def page(session: tuple[object, Watch], demo_server: Daphne) -> Iterator[object]:
    """A fresh tab of the logged-in context."""
    context, _ = session
    tab = context.new_page()
    try:
        yield tab
    finally:
        tab.close()


def open_live(page: object, url: str) -> None:
    """Open ``url`` and wait until its feed is live."""
    page.goto(url)
    page.wait_for_selector("#um-conn[data-state=live]")


def body_seq(page: object, attribute: str = "seq") -> int:
    """The sequence number of the last frame shown (``seq``) or received (``receivedSeq``)."""
    return int(page.evaluate(f"document.body.dataset.{attribute} || '0'"))


def test_browser_list_shows_the_demo_users(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.wait_for_function("() => document.querySelectorAll('#um-rows tr').length >= 3")
    ids = page.eval_on_selector_all("#um-rows tr", "rows => rows.map(r => r.dataset.userId)")
    assert any(i.endswith("@example.com") for i in ids)
    assert page.text_content("[data-summary=users]").strip() != "0"
    assert "demo" in page.text_content("#um-sources")
    assert page.title() == "User metrics | usermetrics"
    # Our stylesheet and the admin's came from Daphne itself, with DEBUG off.
    assert page.evaluate("() => getComputedStyle(document.querySelector('.um-cards')).display") == "grid"
    assert page.evaluate("() => getComputedStyle(document.getElementById('header')).display") == "flex"


def test_browser_list_changes_without_reload_within_two_refreshes(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_function("() => document.body.dataset.seq")
    before = page.text_content("[data-summary=requests]")
    seq = body_seq(page)
    page.wait_for_function(
        "before => document.querySelector('[data-summary=requests]').textContent !== before", arg=before
    )
    # The demo sends requests every tick: the change came with one of the next two frames.
    assert body_seq(page) - seq <= 2
    assert page.evaluate("window.__sameDocument === true")  # no reload happened


def test_browser_pause_holds_the_table_still(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.wait_for_function("() => document.body.dataset.seq")
    page.click("#um-pause")
    assert page.text_content("#um-pause") == "Resume"
    held = page.inner_text("#um-table")
    shown = body_seq(page)
    page.wait_for_function("n => Number(document.body.dataset.receivedSeq) >= n", arg=shown + 3)
    assert page.inner_text("#um-table") == held
    assert body_seq(page) == shown
    assert "paused" in page.text_content("#um-conn")
    page.click("#um-pause")
    page.wait_for_function("n => Number(document.body.dataset.seq) > n", arg=shown)


def test_browser_sort_search_filter_and_page_work_live_and_as_links(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.evaluate("window.__sameDocument = true")
    page.click("#um-table thead a[data-sort=user_id]")
    page.wait_for_function("() => document.querySelector('th[data-field=user_id]').classList.contains('ascending')")
    assert page.url.endswith("/?sort=user_id")
    page.wait_for_function(
        """() => { const ids = [...document.querySelectorAll('#um-rows tr:not(.um-gone)')].map(r => r.dataset.userId);
                   return ids.length > 1 && ids.every((id, i) => i === 0 || ids[i - 1] <= id); }"""
    )
    page.fill("#um-q", "example.com")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#um-rows tr')].every(r => r.dataset.userId.includes('example.com'))"
    )
    page.select_option("#um-page-size", "25")
    page.wait_for_function("() => new URL(location.href).searchParams.get('page_size') === '25'")
    # Maybe before the frame of 25 per page: it keeps the page size either way (the early click for
    # sure: test_browser_a_pill_followed_before_the_frame_keeps_the_page_size).
    page.click(".um-filters a[data-state-value=idle]")
    page.wait_for_selector(".um-filters a[data-state-value=idle].selected")  # a frame of the idle view came
    page.wait_for_function(
        "() => [...document.querySelectorAll('#um-rows tr:not(.um-gone) [data-field=is_active] .um-badge')]"
        ".every(b => b.textContent === 'idle')"
    )
    assert page.evaluate("window.__sameDocument === true")
    # The same view as a plain link, loaded afresh.
    url = page.evaluate("location.href")
    assert params(urlsplit(url).query) == {"sort": "user_id", "q": "example.com", "page_size": "25", "state": "idle"}
    page.goto(url)
    assert page.input_value("#um-q") == "example.com"
    assert page.input_value("#um-page-size") == "25"


# One JS task: choose a page size (or follow a link), then follow another link at once. No frame
# can be applied in between, so the second link only keeps the first change if its target comes
# from the view the page is on, not from the hrefs the last frame wrote. Returns the URL after
# each step and the hrefs the links carry right after the first.
IN_THE_GAP = """([size, first, second]) => {
    const query = () => location.search;
    if (size) {
        const select = document.getElementById('um-page-size');
        select.value = size;
        select.dispatchEvent(new Event('change'));
    } else {
        document.querySelector(first).click();
    }
    const after = query();
    const links = {
        idle: document.querySelector('.um-filters a[data-state-value=idle]'),
        user_id: document.querySelector('#um-table thead a[data-sort=user_id]'),
        page: document.querySelector('#um-paginator a[data-page]'),
        window: [...document.querySelectorAll('.um-windows a')].find(a => a.textContent === '24h'),
        clear: document.querySelector('#um-empty-clear a'),
    };
    const hrefs = Object.fromEntries(Object.entries(links).map(([k, a]) => [k, a ? new URL(a.href).search : null]));
    document.querySelector(second).click();
    return {after, hrefs, url: query()};
}"""


def params(search: str) -> dict[str, str]:
    """A query string as a dict (each key once)."""
    return dict(parse_qsl(search.lstrip("?")))


def test_browser_a_pill_followed_before_the_frame_keeps_the_page_size(demo_server, page):
    open_live(page, demo_server.base + "/?q=example.com")
    page.wait_for_function("() => document.body.dataset.seq")  # the links are the ones a frame wrote
    got = page.evaluate(IN_THE_GAP, ["25", None, ".um-filters a[data-state-value=idle]"])
    assert params(got["after"]) == {"q": "example.com", "page_size": "25"}
    assert params(got["url"]) == {"q": "example.com", "page_size": "25", "state": "idle"}
    # The links carried the page size as soon as it was chosen: a middle click or a copied link keeps it too.
    assert params(got["hrefs"]["idle"]) == {"q": "example.com", "page_size": "25", "state": "idle"}
    assert params(got["hrefs"]["user_id"]) == {"q": "example.com", "page_size": "25", "sort": "user_id"}
    assert params(got["hrefs"]["window"]) == {"q": "example.com", "page_size": "25", "window": "24h"}
    assert params(got["hrefs"]["clear"]) == {"page_size": "25"}
    page.wait_for_selector(".um-filters a[data-state-value=idle].selected")  # the frame of that view
    url = page.evaluate("location.href")
    assert params(urlsplit(url).query) == {"q": "example.com", "page_size": "25", "state": "idle"}
    page.goto(url)
    assert page.input_value("#um-page-size") == "25"
    assert page.input_value("#um-q") == "example.com"


def test_browser_a_sort_header_followed_before_the_frame_keeps_the_page_size(demo_server, page):
    open_live(page, demo_server.base + "/?q=example.com&sort=user_id")
    page.wait_for_function("() => document.body.dataset.seq")
    got = page.evaluate(IN_THE_GAP, ["50", None, "#um-table thead a[data-sort=user_id]"])
    # The header toggles the view's sort (ascending, so now descending) and keeps the rest.
    assert params(got["url"]) == {"q": "example.com", "page_size": "50", "sort": "-user_id"}
    page.wait_for_function("() => document.querySelector('th[data-field=user_id]').classList.contains('descending')")
    assert page.input_value("#um-page-size") == "50"


def test_browser_a_page_link_followed_before_the_frame_keeps_the_sort(demo_server, page):
    open_live(page, demo_server.base + "/?page_size=5&sort=user_id")
    page.wait_for_selector("#um-paginator a[data-page='2']")
    got = page.evaluate(IN_THE_GAP, [None, "#um-table thead a[data-sort=user_id]", "#um-paginator a[data-page='2']"])
    assert params(got["after"]) == {"page_size": "5", "sort": "-user_id"}
    assert params(got["url"]) == {"page": "2", "page_size": "5", "sort": "-user_id"}
    assert params(got["hrefs"]["page"]) == {"page": "2", "page_size": "5", "sort": "-user_id"}
    page.wait_for_function("() => document.querySelector('th[data-field=user_id]').classList.contains('descending')")
    assert "page 2 of" in page.text_content("#um-pages")


def test_browser_a_search_keeps_a_page_size_the_menu_does_not_offer(demo_server, page):
    # ?page_size=5 is a valid view (the server takes 1 to 500), but the select offers 25, 50, ...:
    # it shows none of them, and the search takes the page size from the view instead.
    open_live(page, demo_server.base + "/?page_size=5&sort=user_id")
    page.fill("#um-q", "example.com")
    page.wait_for_function("() => new URL(location.href).searchParams.get('q') === 'example.com'")
    assert params(urlsplit(page.evaluate("location.href")).query) == {
        "page_size": "5",
        "sort": "user_id",
        "q": "example.com",
    }
    # The frame of that view is applied: five rows, all of them matching.
    page.wait_for_function(
        """() => { const ids = [...document.querySelectorAll('#um-rows tr:not(.um-gone)')].map(r => r.dataset.userId);
                   return ids.length === 5 && ids.every(id => id.includes('example.com')); }"""
    )


def test_browser_paging_keeps_the_view(demo_server, page):
    open_live(page, demo_server.base + "/?page_size=5&sort=user_id")
    page.wait_for_selector("#um-paginator a[data-page='2']")
    first = page.get_attribute("#um-rows tr", "data-user-id")
    page.click("#um-paginator a[data-page='2']")
    page.wait_for_function("() => new URL(location.href).searchParams.get('page') === '2'")
    page.wait_for_function("f => document.querySelector('#um-rows tr').dataset.userId > f", arg=first)
    assert "page 2 of" in page.text_content("#um-pages")


def test_browser_page_back_from_the_bfcache_connects_again(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.wait_for_function("() => document.body.dataset.seq")
    # What the browser sends around putting the page in the back/forward cache and taking it out:
    # pagehide closes the socket (its close event is ignored: the page closed it), pageshow with
    # persisted says the page is shown again, not loaded afresh.
    hidden_at, state = page.evaluate(
        """() => {
            window.dispatchEvent(new PageTransitionEvent('pagehide', {persisted: true}));
            const seq = Number(document.body.dataset.receivedSeq);
            window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}));
            return [seq, document.getElementById('um-conn').dataset.state];
        }"""
    )
    assert state == "connecting"  # at once, not after a backoff; and not "live" over a closed socket
    # Only a new socket brings frames past the last one the old socket received.
    page.wait_for_function("n => Number(document.body.dataset.seq) > n", arg=hidden_at)
    page.wait_for_selector("#um-conn[data-state=live]")


def test_browser_detail_page_updates_live(demo_server, page):
    url = demo_server.base + reverse("usermetrics:user-detail", args=[XSS_ID])
    open_live(page, url)
    cell = "td[data-field=total_requests]"
    before = page.text_content(cell)
    page.wait_for_function("([sel, before]) => document.querySelector(sel).textContent !== before", arg=[cell, before])
    assert page.text_content("#um-lifecycle").startswith(("active with", "idle for"))
    assert page.text_content("#um-origins") == "demo"


def test_browser_hostile_user_id_is_text_everywhere(demo_server, page, session):
    _, watch = session
    open_live(page, demo_server.base + "/?q=" + quote("<img"))
    page.wait_for_selector("#um-rows tr")
    assert page.get_attribute("#um-rows tr", "data-user-id") == XSS_ID
    assert page.text_content("#um-rows tr th a") == XSS_ID
    assert page.locator("#um-table img").count() == 0
    page.click("#um-rows tr th a")
    page.wait_for_selector("#um-conn[data-state=live]")
    assert page.text_content("#um-user-id") == XSS_ID
    assert page.locator("#content img").count() == 0
    page.wait_for_function("() => Number(document.body.dataset.seq) > 0")
    assert watch.dialogs == []


def test_browser_admin_pages_link_to_the_dashboard_and_run_under_the_csp(demo_server, page):
    # The admin's own pages get the same policy; their console errors are checked below too.
    for path in ("/admin/auth/user/", "/admin/auth/user/1/change/", "/admin/usermetrics/identity/add/"):
        response = page.goto(demo_server.base + path)
        assert response is not None and response.status == 200, path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.locator("#content h1").count() == 1
    page.goto(demo_server.base + "/admin/")
    page.click("text=Live dashboard")
    page.wait_for_url(demo_server.base + "/")
    page.wait_for_selector("#um-table")


def test_browser_detail_page_draws_history_charts(demo_server, page):
    user_id = page_first_demo_user(demo_server, page)
    open_live(page, demo_server.base + reverse("usermetrics:user-detail", args=[user_id]))
    # uPlot draws each of the five charts on a canvas; the window buttons come from charts.js.
    page.wait_for_function("() => document.querySelectorAll('#um-charts canvas').length >= 5")
    page.wait_for_selector(".usermetrics-chart-windows button[aria-pressed=true]")
    assert page.text_content("[data-rate=requests_per_min]").strip() != ""
    assert page.locator("#um-flags li").count() >= 1
    page.click(".usermetrics-chart-windows button:text-is('24h')")
    page.wait_for_function("() => new URL(location.href).searchParams.get('window') === '24h'")
    page.wait_for_function("() => document.getElementById('um-export-csv').href.endsWith('window=24h')")
    # The server started moments ago: the rates cover what the history holds, and say so.
    assert page.text_content("#um-rate-window").startswith("the last ")
    assert "; history starts " in page.text_content("#um-rate-window")


def page_first_demo_user(demo_server: Daphne, page: object) -> str:
    """The id of a demo user in the list."""
    open_live(page, demo_server.base + "/?q=example.com")
    page.wait_for_selector("#um-rows tr")
    return page.get_attribute("#um-rows tr", "data-user-id")


def test_browser_list_draws_sparklines(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.wait_for_selector("#um-rows tr [data-sparkline-user] canvas")
    assert page.locator("#um-rows tr [data-field=w_requests_per_min]").count() >= 1


def test_browser_pages_load_every_module(demo_server, page, session):
    # The pages' code is ES modules under the CSP: main.js, and through its imports every module
    # in static/usermetrics/js, each served as JavaScript. A module that fails to load or to parse
    # stops the whole graph: then the feed never goes live here, and the console check below fails.
    context, _ = session
    # apidocs.js is the API docs page's own entry point (test_browser_pages.py loads it).
    modules = sorted(p.name for p in JS_DIR.glob("*.js") if p.name != "apidocs.js")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})  # every module is a response
    loaded: dict[str, tuple[int, str]] = {}

    def on_response(response: object) -> None:
        path = response.url.split("?", 1)[0]
        if "/static/usermetrics/js/" in path:
            loaded[path.rsplit("/", 1)[1]] = (response.status, response.headers.get("content-type", ""))

    page.on("response", on_response)
    for url in (demo_server.base + "/", demo_server.base + reverse("usermetrics:user-detail", args=[XSS_ID])):
        loaded.clear()
        open_live(page, url)
        scripts = page.eval_on_selector_all("script[src*='/usermetrics/js/']", "s => s.map(e => [e.type, e.src])")
        assert scripts == [["module", demo_server.base + "/static/usermetrics/js/main.js"]]
        assert sorted(loaded) == modules, url
        assert all(status == 200 and "javascript" in kind for status, kind in loaded.values()), loaded


def test_browser_ended_filter_shows_an_ended_user(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.click(".um-filters a[data-state-value=ended]")
    page.wait_for_url("**/?state=ended")
    page.wait_for_selector(f'#um-rows tr[data-user-id="{ENDED_ID}"]')
    row = f'#um-rows tr[data-user-id="{ENDED_ID}"]'
    assert re.search(r"ended \d+ min ago", page.text_content(row + " th"))
    assert page.text_content(row + " [data-field=total_requests]") == "42"
    page.wait_for_function("() => Number(document.body.dataset.seq) > 0")  # live frames leave the rows be
    assert page.locator(row).count() == 1
    page.click(row + " th a")
    page.wait_for_selector("#um-state[data-state=ended]")
    assert page.locator("#um-gone").is_visible()


RULE_SET = """
from usermetrics.models import AlertRule
AlertRule.objects.filter(name="users-total").update(enabled={on}, threshold=1, for_seconds=0, clear_seconds=0)
"""


def test_browser_alert_count_in_the_header_changes_live(demo_server, page):
    open_live(page, demo_server.base + "/")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_function("() => document.getElementById('um-alerts').textContent === 'No alert firing'")
    manage(demo_server.env, "shell", "-c", RULE_SET.format(on=True))  # more than one user: fires at the next refresh
    page.wait_for_function("() => document.getElementById('um-alerts').textContent === '1 alert firing'")
    assert page.get_attribute("#um-alerts", "data-severity") == "info"
    assert page.evaluate("window.__sameDocument === true")  # no reload happened
    # The alerts page lists it, and says so when what fires changes while it is open.
    page.click("#um-alerts")
    page.wait_for_selector("#um-conn[data-state=live]")
    assert "users-total" in page.text_content(".um-alert-table")
    assert page.is_hidden("#um-alerts-changed")
    manage(demo_server.env, "shell", "-c", RULE_SET.format(on=False))
    page.wait_for_function("() => document.getElementById('um-alerts').textContent === 'No alert firing'")
    page.wait_for_selector("#um-alerts-changed", state="visible")


def test_browser_console_has_no_errors(session):
    # Runs after the tests above, in file order: everything their pages logged.
    _, watch = session
    assert watch.errors == []


def test_browser_daphne_restart_shows_reconnecting_then_live(demo_server, page, session):
    _, watch = session
    open_live(page, demo_server.base + "/")
    seen = len(watch.errors)
    demo_server.stop()
    try:
        page.wait_for_function("() => document.getElementById('um-conn').textContent.startsWith('reconnecting')")
    finally:
        demo_server.start()
    # Backoff is 1 s doubling to 30 s with jitter; the server is back within the first few tries.
    page.wait_for_selector("#um-conn[data-state=live]", timeout=45_000)
    before = body_seq(page)
    page.wait_for_function("n => Number(document.body.dataset.seq) !== n", arg=before)
    # While the server was down the browser logged failed connections; nothing else. The pages fetch nothing
    # while their feed is down, but a fetch can start in the instant before the socket sees the server go.
    refused = ("WebSocket connection to", "Failed to load resource: net::ERR_CONNECTION_REFUSED")
    assert all(any(r in e for r in refused) for e in watch.errors[seen:]), watch.errors[seen:]
