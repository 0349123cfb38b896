"""Fixtures of the JSON API's tests: a service over a runtime manager with every odd id."""

from __future__ import annotations

import pytest

from tests.support.factories import ODD_IDS
from usermetrics.sources import LocalSource


@pytest.fixture
async def local(install_service, manager):
    """A service over a runtime manager with user 'alice' and every odd id."""
    for user_id in ODD_IDS:
        async with manager.session(user_id) as builder:
            builder.add_function("tool", object())
    await install_service([LocalSource("local", manager)])
    return manager
