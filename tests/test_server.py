"""Whole stack: a real Daphne serving the demo workload; the README's curl calls, as a user makes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import free_port
from usermetrics.metrics import PerUserMonitorResponse

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "whole-stack-token-" + "z" * 24


@pytest.fixture(scope="module")
def daphne(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Daphne on a free loopback port with the demo workload; yields its base URL."""
    port = free_port()
    var = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="monitor_site.settings",
        DEBUG="0",
        SECRET_KEY="whole-stack-secret-" + "s" * 40,
        ALLOWED_HOSTS="127.0.0.1",
        USERMETRICS_VAR_DIR=str(var),
        USERMETRICS_API_TOKENS=f"other-token,{TOKEN}",
        USERMETRICS_DEMO="1",
        USERMETRICS_REFRESH_INTERVAL="0.5",
    )
    log = (var / "daphne.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "monitor_site.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _get(base + "/api/status")[0] == 401, what="Daphne to answer", proc=proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _wait_until(predicate, *, what: str, proc: subprocess.Popen | None = None, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_server_monitor_users_with_token_returns_demo_users(daphne):
    def has_users() -> bool:
        status, body = _get(daphne + "/monitor/users", TOKEN)
        return status == 200 and PerUserMonitorResponse.model_validate_json(body).total_active_users > 0

    _wait_until(has_users, what="demo users")
    status, body = _get(daphne + "/monitor/users", TOKEN)
    doc = json.loads(body)
    assert list(doc) == ["timestamp", "total_active_users", "users"]
    assert all(u["user_id"].endswith("@example.com") for u in doc["users"])
    assert doc["total_active_users"] == len(doc["users"])
    first = doc["users"][0]["user_id"]
    status, body = _get(daphne + reverse("usermetrics:api-user", args=[first]), TOKEN)
    assert status == 200 and json.loads(body)["user_id"] == first


def test_server_without_token_is_401(daphne):
    status, body = _get(daphne + "/monitor/users")
    assert status == 401
    assert json.loads(body) == {
        "detail": "Authentication required: a staff session or 'Authorization: Bearer <token>'."
    }
    assert _get(daphne + "/monitor/users", "wrong")[0] == 401


@pytest.mark.parametrize("user_id", ["a/b c", "naïve-ユーザー", "100%", "<x>\"'", ".."])
def test_server_odd_ids_survive_daphne_decoding(daphne, user_id):
    status, body = _get(daphne + reverse("usermetrics:api-user", args=[user_id]), TOKEN)
    assert status == 404
    assert json.loads(body)["user_id"] == user_id
