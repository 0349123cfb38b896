"""Whole stack: history recorded by a real Daphne survives stopping it and starting it again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from tests.support.daphne import Daphne, http_get, manage, server_env, wait_until
from tests.support.machine import free_port

TOKEN = "history-restart-token-" + "h" * 24


class Dashboard(Daphne):
    """Daphne over one var dir (file SQLite) that can be stopped and started, like an operator would."""

    def __init__(self, var: Path) -> None:
        """Serve from ``var``; migrate it once."""
        env = server_env(
            var,
            USERMETRICS_API_TOKENS=TOKEN,
            USERMETRICS_DEMO="1",
            USERMETRICS_DEMO_USERS="12",
            USERMETRICS_REFRESH_INTERVAL="0.3",
            USERMETRICS_HISTORY_SAMPLE_INTERVAL="0",
        )
        super().__init__(free_port(), env, var / "daphne.log")
        manage(env, "migrate", "--noinput", "-v", "0")

    def json(self, path: str) -> Any:
        """GET ``path`` with the token; the JSON body (asserting 200)."""
        status, body = http_get(self.base + path, TOKEN)
        assert status == 200, (status, body[:300])
        return json.loads(body)


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """A dashboard over a fresh var dir, stopped after the test."""
    board = Dashboard(tmp_path)
    try:
        yield board
    finally:
        board.stop()


def _requests(doc: dict[str, Any]) -> float:
    return sum(v or 0 for v in doc["requests_per_min"])


def test_history_survives_a_dashboard_restart(dashboard):
    overview = reverse("usermetrics:api-overview-history") + "?window=15m"
    dashboard.start()
    wait_until(lambda: _requests(dashboard.json(overview)) > 0, what="recorded traffic")
    users = dashboard.json("/monitor/users")["users"]
    busy = max(users, key=lambda u: u["requests"]["total_requests"])["user_id"]
    user_url = reverse("usermetrics:api-user-history", args=[busy]) + "?window=15m"
    wait_until(lambda: _requests(dashboard.json(user_url)) > 0, what="the user's recorded traffic")
    before = dashboard.json(user_url)
    dashboard.stop()

    dashboard.start()
    after_overview = dashboard.json(overview)
    after = dashboard.json(user_url)
    # The past is still there: the points recorded before the restart come back from the store.
    assert _requests(after_overview) > 0
    recorded_before = [t for t, v in zip(before["t"], before["requests_per_min"], strict=True) if v]
    kept = {t for t, v in zip(after["t"], after["requests_per_min"], strict=True) if v}
    assert recorded_before and set(recorded_before) <= kept
    assert after["lives"][0]["first_seen"] == before["lives"][0]["first_seen"]
    # The demo's workflows live in the dashboard's process: the restart cleared them, and the
    # recorder tells the new workflows apart as new lives instead of adding their counters up.
    wait_until(
        lambda: len(dashboard.json(user_url)["lives"]) >= 2 or busy not in _ids(dashboard),
        what="the restarted user's new life",
    )


def _ids(board: Dashboard) -> set[str]:
    return {u["user_id"] for u in board.json("/monitor/users")["users"]}
