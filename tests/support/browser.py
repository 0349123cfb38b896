"""Headless Chromium for the browser tests (sync): Debian's, never a downloaded one; its flags, bounds and skip rule."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.support.machine import REQUIRE_SERVICES

CHROMIUM = os.environ.get("USERMETRICS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The admin's password on the browser tests' servers (DASHBOARD_ADMIN_PASSWORD).
PASSWORD = "browser-test-password-4821"
# The bound on any one wait for the page, in milliseconds; generous for a 2-core machine.
WAIT_MS = 15_000

# The browser tests' pytestmark: without Chromium they skip, except in CI, where that is a failure.
needs_chromium = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()) and not REQUIRE_SERVICES,
    reason=f"Chromium not found at {CHROMIUM} (.ci/run installs Debian's chromium package)",
)


@contextmanager
def chromium_browser(executable: str, args: list[str]) -> Iterator[object]:
    """Headless Chromium through Playwright's sync API (``executable``: Debian's, never a downloaded one)."""

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=args)
        try:
            yield browser
        finally:
            browser.close()


def admin_login(page: object, base: str) -> None:
    """Log ``page`` in as the browser tests' admin through the admin's login page; it lands on the list."""
    page.goto(base + "/admin/login/?next=/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(base + "/")
