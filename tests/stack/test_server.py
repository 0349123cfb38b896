"""Whole stack: a real Daphne serving the demo workload; the README's curl calls, as a user makes them."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from django.urls import reverse

from tests.support.daphne import http_get, manage, server_env, serving, wait_until
from usermetrics.metrics import PerUserMonitorResponse

TOKEN = "whole-stack-token-" + "z" * 24


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Daphne on a free loopback port with the demo workload; yields its base URL."""
    var = tmp_path_factory.mktemp("var")
    env = server_env(
        var,
        SECRET_KEY="whole-stack-secret-" + "s" * 40,
        USERMETRICS_API_TOKENS=f"other-token,{TOKEN}",
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_EXTRA_USERS="a/b/c",
        USERMETRICS_REFRESH_INTERVAL="0.5",
    )
    # Migrated, as the README's commands do: an unknown id is then looked up in a real history (with
    # no tables every lookup fails, which the server rightly answers 503, not 404).
    manage(env, "migrate", "--noinput", "-v", "0")
    with serving(env, var / "daphne.log") as server:
        yield server.base


def test_server_monitor_users_with_token_returns_demo_users(demo_url):
    def has_users() -> bool:
        status, body = http_get(demo_url + "/monitor/users", TOKEN)
        return status == 200 and PerUserMonitorResponse.model_validate_json(body).total_active_users > 0

    wait_until(has_users, what="demo users")
    status, body = http_get(demo_url + "/monitor/users", TOKEN)
    doc = json.loads(body)
    assert list(doc) == ["timestamp", "total_active_users", "users"]
    assert all(u["user_id"].endswith("@example.com") or u["user_id"] == "a/b/c" for u in doc["users"])
    assert doc["total_active_users"] == len(doc["users"])
    first = doc["users"][0]["user_id"]
    status, body = http_get(demo_url + reverse("usermetrics:api-user", args=[first]), TOKEN)
    assert status == 200 and json.loads(body)["user_id"] == first


def test_server_without_token_is_401(demo_url):
    status, body = http_get(demo_url + "/monitor/users")
    assert status == 401
    assert json.loads(body) == {
        "detail": "Authentication required: a staff session or 'Authorization: Bearer <token>'."
    }
    assert http_get(demo_url + "/monitor/users", "wrong")[0] == 401


@pytest.mark.parametrize("user_id", ["a/b c", "naïve-ユーザー", "100%", "<x>\"'", ".."])
def test_server_odd_ids_survive_daphne_decoding(demo_url, user_id):
    status, body = http_get(demo_url + reverse("usermetrics:api-user", args=[user_id]), TOKEN)
    assert status == 404
    assert json.loads(body)["user_id"] == user_id


def _request(url: str, *, method: str = "GET", token: str | None = TOKEN) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one request, errors included."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.mark.parametrize("path", ["/static/usermetrics/js/format.js", "/static/admin/css/base.css"])
def test_server_static_files_are_nosniff(demo_url, path):
    # ASGIStaticFilesHandler answers these before Django's SecurityMiddleware could add the header.
    status, headers, _ = _request(demo_url + path, token=None)
    assert status == 200
    assert headers["x-content-type-options"] == "nosniff"


def test_server_an_id_with_percent_encoded_slashes_opens(demo_url):
    # What any HTTP client's quoting makes of "a/b/c"; Daphne decodes %2F before routing.
    wait_until(lambda: _request(demo_url + "/api/users/a~2Fb~2Fc")[0] == 200, what="the demo's extra user")
    for path in ("/api/users/a%2Fb%2Fc", "/api/users/a%2fb%2Fc", "/api/users/a~2Fb~2Fc"):
        status, _, body = _request(demo_url + path)
        assert status == 200, path
        assert json.loads(body)["user_id"] == "a/b/c"


def test_server_api_paths_without_a_route_answer_json(demo_url):
    status, headers, body = _request(demo_url + "/api/no-such-thing")
    assert status == 404 and headers["content-type"] == "application/json"
    assert "/api/no-such-thing" in json.loads(body)["detail"]
    status, headers, body = _request(demo_url + "/api/status", method="POST")
    assert status == 405 and headers["content-type"] == "application/json"
    assert json.loads(body)["allow"] == ["GET"] and headers["allow"] == "GET"


def test_server_logins_keep_csrf_their_session_and_the_lockout_on_daphne(tmp_path):
    # Under Daphne every request is async, and Django's session, auth and messages middleware run on
    # the event loop (usermetrics.middleware.OnTheLoop): a login's session is still saved, CSRF still
    # refuses a form without its token, and failures still lock the username out.
    env = server_env(tmp_path, DASHBOARD_ADMIN_USER="boss", DASHBOARD_ADMIN_PASSWORD="pw-boss-" + "p" * 12)
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "ensureadmin")
    with serving(env, tmp_path / "daphne.log") as server, httpx.Client(base_url=server.base) as client:
        form = client.get("/admin/login/")
        token = client.cookies["csrftoken"]
        login = {"username": "boss", "password": env["DASHBOARD_ADMIN_PASSWORD"], "next": "/admin/"}
        assert client.post("/admin/login/", data=login).status_code == 403  # no CSRF token
        ok = client.post("/admin/login/", data={**login, "csrfmiddlewaretoken": token})
        assert (ok.status_code, ok.headers["location"]) == (302, "/admin/")
        assert form.status_code == 200 and client.get("/admin/").status_code == 200
        with httpx.Client(base_url=server.base) as stranger:
            stranger.get("/admin/login/")
            wrong = {**login, "password": "wrong", "csrfmiddlewaretoken": stranger.cookies["csrftoken"]}
            statuses = [stranger.post("/admin/login/", data=wrong).status_code for _ in range(5)]
            right = stranger.post("/admin/login/", data={**wrong, "password": login["password"]})
        assert statuses == [200, 200, 200, 200, 429] and right.status_code == 429
        assert "sessionid" not in right.cookies
