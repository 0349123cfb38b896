"""Whole stack: a real Daphne serving the demo workload; the README's curl calls, as a user makes them."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.urls import reverse

from tests.conftest import free_port
from tests.daphne import Daphne, http_get, server_env, wait_until
from usermetrics.metrics import PerUserMonitorResponse

TOKEN = "whole-stack-token-" + "z" * 24


@pytest.fixture(scope="module")
def daphne(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Daphne on a free loopback port with the demo workload; yields its base URL."""
    var = tmp_path_factory.mktemp("var")
    env = server_env(
        var,
        SECRET_KEY="whole-stack-secret-" + "s" * 40,
        USERMETRICS_API_TOKENS=f"other-token,{TOKEN}",
        USERMETRICS_DEMO="1",
        USERMETRICS_REFRESH_INTERVAL="0.5",
    )
    server = Daphne(free_port(), env, var / "daphne.log")
    server.start()
    try:
        yield server.base
    finally:
        server.stop()


def test_server_monitor_users_with_token_returns_demo_users(daphne):
    def has_users() -> bool:
        status, body = http_get(daphne + "/monitor/users", TOKEN)
        return status == 200 and PerUserMonitorResponse.model_validate_json(body).total_active_users > 0

    wait_until(has_users, what="demo users")
    status, body = http_get(daphne + "/monitor/users", TOKEN)
    doc = json.loads(body)
    assert list(doc) == ["timestamp", "total_active_users", "users"]
    assert all(u["user_id"].endswith("@example.com") for u in doc["users"])
    assert doc["total_active_users"] == len(doc["users"])
    first = doc["users"][0]["user_id"]
    status, body = http_get(daphne + reverse("usermetrics:api-user", args=[first]), TOKEN)
    assert status == 200 and json.loads(body)["user_id"] == first


def test_server_without_token_is_401(daphne):
    status, body = http_get(daphne + "/monitor/users")
    assert status == 401
    assert json.loads(body) == {
        "detail": "Authentication required: a staff session or 'Authorization: Bearer <token>'."
    }
    assert http_get(daphne + "/monitor/users", "wrong")[0] == 401


@pytest.mark.parametrize("user_id", ["a/b c", "naïve-ユーザー", "100%", "<x>\"'", ".."])
def test_server_odd_ids_survive_daphne_decoding(daphne, user_id):
    status, body = http_get(daphne + reverse("usermetrics:api-user", args=[user_id]), TOKEN)
    assert status == 404
    assert json.loads(body)["user_id"] == user_id
