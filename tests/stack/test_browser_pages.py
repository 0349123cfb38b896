"""Browser: the pages as an operator reads them (real Daphne, Chromium): fit, words, live parts, keyboard, axe.

One Daphne serves the demo workload (with a 10,000-character id) and a fake NAT server whose
every user makes one request per fetch, so the rates right after a start are known; the NAT
source can be made to fail. Screenshots of every page at 1,366 and 1,920 px, light and dark, go
to ``var/screenshots/`` (kept after the run; ``USERMETRICS_SCREENSHOTS`` puts them elsewhere).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import PASSWORD, WAIT_MS, admin_login, needs_chromium
from tests.support.daphne import Daphne, http_get, manage, server_env, serving, wait_until
from tests.support.fake_nat import FakeNat
from tests.support.machine import ROOT

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium  # the same Chromium, skip rule and bounds as the other browser tests

AXE = ROOT / "tests" / "support" / "vendor" / "axe-core" / "axe.min.js"
SHOTS = Path(os.environ.get("USERMETRICS_SCREENSHOTS", ROOT / "var" / "screenshots"))
LONG_ID = "x" * 10_000
INTERVAL = 0.5
TOKEN = "browser-pages-token-" + "t" * 24
WIDTHS = (1366, 1920)
SCHEMES = ("light", "dark")


@pytest.fixture(scope="module")
def fake_nat() -> Iterator[FakeNat]:
    """A NAT server of 5 users, each making one request per fetch."""
    fake = FakeNat(5, moving=1.0, prefix="nat").start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def demo_and_nat_server(tmp_path_factory: pytest.TempPathFactory, fake_nat: FakeNat) -> Iterator[Daphne]:
    """Daphne with the demo (and a 10,000-character id) and the fake NAT server, a fresh history."""
    var = tmp_path_factory.mktemp("pages-var")
    env = server_env(
        var,
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_USERS="10",
        USERMETRICS_DEMO_EXTRA_USERS=f"{LONG_ID},ada.lovelace.with.a.rather.long.address@example-company.com",
        NAT_SOURCES=f"nat-a={fake_nat.url}",
        USERMETRICS_REFRESH_INTERVAL=str(INTERVAL),
        USERMETRICS_SOURCE_DOWN_AFTER="3",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="1",
        USERMETRICS_API_TOKENS=TOKEN,
        DASHBOARD_ADMIN_PASSWORD=PASSWORD,
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "ensureadmin")
    with serving(env, var / "daphne.log") as daphne:
        wait_until(lambda: http_get(daphne.base + "/api/status", TOKEN)[0] == 200, what="a published board")
        yield daphne


@pytest.fixture(scope="module")
def logged_in(demo_and_nat_server: Daphne, browser: object) -> dict[str, object]:
    """The cookies of one login through the admin login page, for every context of the module."""
    context = browser.new_context()
    page = context.new_page()
    admin_login(page, demo_and_nat_server.base)
    state = context.storage_state()
    context.close()
    return state


# What each page shows once it is drawn: its feed live, its charts and fetched parts in.
READY = {
    "list": "() => document.querySelectorAll('#um-overview canvas').length === 5"
    " && document.querySelector('#um-rows [data-sparkline-user] canvas')",
    # Five charts, and two more (tokens/min, cost/hour) for a user whose LLM calls are counted (the demo's).
    "detail": "() => document.querySelectorAll('#um-charts canvas').length >= 5",
    "sources": "() => document.querySelector('[data-timeline] span')",
    "docs": "() => document.querySelector('#um-swagger .opblock')",
}


def visit(page: object, demo_and_nat_server: Daphne, name: str) -> None:
    """Open page ``name`` of PAGES and wait until it is drawn."""
    page.goto(demo_and_nat_server.base + PAGES[name])
    if name != "docs":
        page.wait_for_selector("#um-conn[data-state=live]")
    page.wait_for_function(READY[name])


@pytest.fixture
def open_page(demo_and_nat_server: Daphne, browser: object, logged_in: dict[str, object]) -> Iterator[object]:
    """``open_page(path, width=1366, scheme="light", **context_options)``: a logged-in tab, live when it has a feed."""
    contexts: list[object] = []

    def make(path: str, *, width: int = 1366, scheme: str = "light", live: bool = True, **options: object) -> object:
        context = browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme=scheme, storage_state=logged_in, **options
        )
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        if path:
            page.goto(demo_and_nat_server.base + path)
            if live:
                page.wait_for_selector("#um-conn[data-state=live]")
        return page

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


def test_browser_pages_list_fits_1366_without_horizontal_scroll(open_page):
    page = open_page("/")
    page.wait_for_function("() => document.querySelectorAll('#um-rows tr').length >= 10")
    widths = page.evaluate(
        "() => { const r = document.querySelector('.um-results');"
        " return [document.documentElement.scrollWidth, r.scrollWidth, r.clientWidth]; }"
    )
    assert widths[0] <= 1366 and widths[1] <= widths[2], widths
    # The columns left out by default are a choice away, and the choice is remembered.
    page.click("#um-columns summary")
    page.check("#um-columns input[value=created_at]")
    assert page.locator("#um-rows tr >> nth=0 >> [data-field=created_at]").is_visible()
    page.reload()
    page.wait_for_selector("#um-conn[data-state=live]")
    assert page.locator("#um-rows tr >> nth=0 >> [data-field=created_at]").is_visible()
    assert page.get_attribute("th.um-group-session", "colspan") == "3"


def test_browser_pages_a_10000_character_id_is_one_short_line(open_page):
    page = open_page("/?sort=user_id&q=xxxxxxxxxx")
    row = f'#um-rows tr[data-user-id="{LONG_ID}"]'
    page.wait_for_selector(row)
    link = page.locator(row + " th a")
    box = link.bounding_box()
    line = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector('#um-rows th a')).lineHeight)")
    assert box["height"] <= line * 1.5 and box["width"] < 400, box  # one line, an ellipsis, not a screen of x's
    assert page.locator(row).bounding_box()["height"] < 60
    assert link.get_attribute("title") == LONG_ID  # the whole id on hover


def _contrast_js() -> str:
    return """el => {
      const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
      const lin = x => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; };
      const lum = c => { const v = c.map(lin); return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; };
      const style = getComputedStyle(el);
      const a = lum(rgb(style.color)), b = lum(rgb(style.backgroundColor));
      return [(Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), style.backgroundColor, style.animationName];
    }"""


@pytest.mark.parametrize("scheme", SCHEMES)
def test_browser_pages_a_badge_that_changes_keeps_readable_text(open_page, scheme):
    page = open_page("/", scheme=scheme)
    badge = page.wait_for_selector("#um-rows .um-badge[data-state=active]")
    steady = page.evaluate(_contrast_js(), badge)
    # Demo users go active and idle all the time: catch a badge in its highlight.
    flashed = page.wait_for_selector("#um-rows .um-badge.um-flash", timeout=30_000)
    ratio, background, animation = page.evaluate(_contrast_js(), flashed)
    assert animation == "um-flash"
    assert ratio >= 4.5, (ratio, background)  # WCAG AA for its small text, during the highlight too
    assert steady[0] >= 4.5


def test_browser_pages_no_highlight_under_reduced_motion(open_page):
    page = open_page("/", reduced_motion="reduce")
    flashed = page.wait_for_selector("#um-rows .um-flash", timeout=30_000)
    assert page.evaluate("el => getComputedStyle(el).animationName", flashed) == "none"


def test_browser_pages_rates_right_after_a_start_match_the_requests_made(open_page, fake_nat):
    # Every NAT user makes one request per fetch, a fetch every INTERVAL s: 120 requests a minute.
    page = open_page("/?q=nat-&window=1h")
    page.wait_for_function("() => document.querySelectorAll('#um-rows tr').length === 5")
    page.wait_for_timeout(6000)  # a few history samples in
    page.reload()
    page.wait_for_selector("#um-conn[data-state=live]")
    made = 60 / INTERVAL
    for cell in page.locator("#um-rows [data-field=w_requests_per_min]").all_text_contents():
        # Divided by the minutes the history covers, not the hour: about 120, never 120 * 10 s / 1 h.
        assert 0.6 * made <= float(cell) <= 1.4 * made, cell
    words = page.text_content("#um-coverage-words")
    assert re.fullmatch(r"the last \d+ s; history starts \d\d:\d\d UTC[+-]\d\d:\d\d", words), words
    assert page.text_content("#um-window-head").endswith(" s")


def test_browser_pages_sources_page_updates_live(open_page, fake_nat):
    page = open_page("/sources/")
    row = '#um-source-rows tr[data-source="nat-a"]'
    page.wait_for_selector(row + " .um-badge[data-state=ok]")
    page.wait_for_function(f"() => /KiB|B$/.test(document.querySelector('{row} [data-field=body]').textContent)")
    page.wait_for_selector(row + " [data-timeline] span[data-state=ok]")
    fake_nat.status = 500  # a lying source: it answers, but not with data
    try:
        page.wait_for_selector(row + " .um-badge[data-state=stale]")
        assert "HTTP 500" in page.text_content(row + " [data-field=last_error] [data-error]")
        assert (
            page.text_content(row + " .um-error-ago").endswith(" ago")
            or page.text_content(row + " .um-error-ago") == "just now"
        )
        page.wait_for_selector(row + " .um-badge[data-state=down]")  # after SOURCE_DOWN_AFTER (3 s)
        page.wait_for_selector(row + " [data-timeline] span[data-state=down]")
    finally:
        fake_nat.status = 200
    page.wait_for_selector(row + " .um-badge[data-state=ok]")
    # The banner of every page names the failing source while it fails, and links here (seen above).
    assert page.locator("#um-header-items a[aria-current=page]").text_content() == "Sources"


def test_browser_pages_overview_chart_updates_live(open_page):
    page = open_page("/")
    page.wait_for_function("() => document.querySelectorAll('#um-overview canvas').length === 5")
    picture = "() => document.querySelectorAll('#um-overview canvas')[2].toDataURL()"  # in flight
    before = page.evaluate(picture)
    page.wait_for_function(f"before => ({picture})() !== before", arg=before, timeout=20_000)


def test_browser_pages_keyboard_sorts_and_pauses(open_page):
    page = open_page("/")
    page.evaluate("window.__sameDocument = true")

    def tab_to(selector: str) -> None:
        for _ in range(120):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("a[data-sort=total_requests]")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('th[data-field=total_requests]').ariaSort === 'descending'")
    assert "sort=-total_requests" in page.url and page.evaluate("window.__sameDocument === true")
    page.keyboard.press("Enter")  # again: the other way
    page.wait_for_function("() => document.querySelector('th[data-field=total_requests]').ariaSort === 'ascending'")
    page.focus("#um-q")  # then on from the search box, by keyboard again
    tab_to("#um-pause")
    page.keyboard.press("Enter")
    assert page.text_content("#um-pause") == "Resume" and page.get_attribute("#um-pause", "aria-pressed") == "true"
    page.keyboard.press("Space")
    assert page.text_content("#um-pause") == "Pause"
    # Live updates are announced politely, and not cell by cell.
    assert page.get_attribute("#um-count", "aria-live") == "polite"
    assert page.locator("#um-table [aria-live]").count() == 0


PAGES = {
    "list": "/",
    "detail": "/users/ada.lovelace.with.a.rather.long.address@example-company.com/",
    "sources": "/sources/",
    "docs": "/api/docs/",
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_browser_pages_axe_finds_nothing_serious(open_page, demo_and_nat_server, scheme):
    # axe-core is injected by the test only (bypass_csp: the page's CSP would refuse it).
    page = open_page("", scheme=scheme, bypass_csp=True)
    found = {}
    for name in PAGES:
        visit(page, demo_and_nat_server, name)
        page.add_script_tag(path=str(AXE))
        violations = page.evaluate("() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
        found[name] = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"][:3]])
            for v in violations
            if v["impact"] in ("serious", "critical")
        ]
    assert found == {name: [] for name in PAGES}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("width", WIDTHS)
def test_browser_pages_screenshots(open_page, demo_and_nat_server, width, scheme):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = open_page("", width=width, scheme=scheme)
    errors: list[str] = []  # under the real CSP (no bypass here): a refused script or style is an error
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for name in PAGES:
        visit(page, demo_and_nat_server, name)
        target = SHOTS / f"{name}-{width}-{scheme}.png"
        page.screenshot(path=str(target))
        assert target.stat().st_size > 10_000
    assert errors == []


def test_browser_pages_a_logout_elsewhere_says_session_ended_and_stays_closed(demo_and_nat_server, browser):
    """Logging out in another tab closes this tab's feed with 4401: it says so and does not reconnect."""
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    try:
        page = context.new_page()
        admin_login(page, demo_and_nat_server.base)
        page.wait_for_selector("#um-conn[data-state=live]")
        other = context.new_page()  # the same session
        other.goto(demo_and_nat_server.base + "/admin/")
        other.click("#logout-form button")
        other.wait_for_url("**/admin/logout/")
        page.wait_for_selector("#um-conn[data-state=ended]")
        assert page.locator("#um-conn").text_content() == "session ended: reload to log in"
        page.wait_for_timeout(3000)  # past the first reconnect's backoff (1-2 s): still closed
        assert page.locator("#um-conn").get_attribute("data-state") == "ended"
    finally:
        context.close()


def test_browser_pages_an_actions_confirmation_is_an_accessible_dialog_that_escape_cancels(
    open_page, demo_and_nat_server
):
    # The demo's users are not a companion's (the buttons are disabled): the form is submitted as a click would.
    page = open_page("", bypass_csp=True)
    visit(page, demo_and_nat_server, "detail")
    posts: list[str] = []
    page.on("request", lambda request: request.method == "POST" and posts.append(request.url))
    page.fill("form.um-action-form:has([data-action=hold]) input[name=reason]", "runaway <b>costs</b>")
    page.evaluate("() => document.querySelector('form.um-action-form:has([data-action=hold])').requestSubmit()")
    page.wait_for_selector("#um-action-dialog[open]")
    question = page.text_content("#um-action-question")
    assert question.startswith("Hold this user?") and question.endswith("For 1 hour. Reason: runaway <b>costs</b>")
    # The safe choice has the focus; the dialog is named by its question, and axe finds nothing with it open.
    assert page.evaluate("() => document.activeElement.value") == "cancel"
    assert page.evaluate("() => document.getElementById('um-action-dialog').getAttribute('aria-labelledby')") == (
        "um-action-question"
    )
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations)")
    assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.getElementById('um-action-dialog').open")
    assert posts == [] and PAGES["detail"] in page.url
