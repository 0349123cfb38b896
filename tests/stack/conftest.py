"""Whole-stack tests (sync fixtures): every test here is marked ``stack`` (``-m "not stack"`` is the quick run);
one headless Chromium per browser test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, chromium_browser

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected under tests/stack/ ``stack`` (before ``-m`` selects)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium for the module (Debian's package, never a downloaded one)."""
    with chromium_browser(CHROMIUM, CHROMIUM_ARGS) as chromium:
        yield chromium
