"""JSON API: access matrix, NAT's /monitor/users shape, filters, odd user ids, 404 bodies."""

from __future__ import annotations

import gzip
import json
from urllib.parse import urlencode

import pytest
from channels.testing import HttpCommunicator
from django.test import AsyncClient
from django.urls import reverse

from monitor_site.asgi import application
from tests.support.factories import ODD_IDS
from tests.support.producers import current_producer
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage
from usermetrics.publish.face import face_get

pytestmark = pytest.mark.django_db(transaction=True)


ENDPOINTS = ["/monitor/users", "/api/users/alice", "/api/status"]


def _assert_401(response) -> None:
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"detail"}
    assert "users" not in response.content.decode()


@pytest.mark.parametrize("url", ENDPOINTS)
async def test_api_access_matrix(url, local, staff_user, plain_user, api_tokens):
    _assert_401(await AsyncClient().get(url))

    non_staff = AsyncClient()
    await non_staff.aforce_login(plain_user)
    _assert_401(await non_staff.get(url))

    staff = AsyncClient()
    await staff.aforce_login(staff_user)
    assert (await staff.get(url)).status_code == 200

    for token in api_tokens:
        assert (await AsyncClient().get(url, headers={"Authorization": f"Bearer {token}"})).status_code == 200
    for header in (f"Bearer {api_tokens[0]}x", "Bearer ", f"Basic {api_tokens[0]}", api_tokens[0], "Bearer  "):
        _assert_401(await AsyncClient().get(url, headers={"Authorization": header}))


async def test_api_inactive_staff_is_refused(local, staff_user):
    client = AsyncClient()
    await client.aforce_login(staff_user)
    staff_user.is_active = False
    await staff_user.asave()
    _assert_401(await client.get("/monitor/users"))


async def test_api_no_tokens_configured_accepts_no_token(local, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "API_TOKENS": []}
    _assert_401(await AsyncClient().get("/monitor/users", headers={"Authorization": "Bearer "}))
    _assert_401(await AsyncClient().get("/monitor/users", headers={"Authorization": "Bearer anything"}))


async def test_api_monitor_users_is_nat_shaped(local, staff_client):
    response = await staff_client.get("/monitor/users")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    doc = json.loads(response.content)
    assert list(doc) == ["timestamp", "total_active_users", "users"]
    parsed = PerUserMonitorResponse.model_validate_json(response.content)
    assert parsed.total_active_users == len(ODD_IDS) == len(parsed.users)
    alice = next(u for u in doc["users"] if u["user_id"] == "alice")
    assert list(alice) == ["user_id", "session", "requests", "memory"]
    assert alice["memory"]["per_user_functions_count"] == 1
    assert doc["timestamp"].endswith("Z")  # aware UTC


async def test_api_user_id_filter(local, staff_client):
    for user_id in ("alice", "a/b/c", "100% sure", "x" * 1000):
        response = await staff_client.get("/monitor/users?" + urlencode({"user_id": user_id}))
        doc = json.loads(response.content)
        assert [u["user_id"] for u in doc["users"]] == [user_id]
        assert doc["total_active_users"] == 1
    unknown = await staff_client.get("/monitor/users?user_id=nobody")
    assert unknown.status_code == 200
    doc = json.loads(unknown.content)
    assert doc["users"] == [] and doc["total_active_users"] == 0


async def test_api_monitor_users_gzip_decodes_to_the_same_document(local, staff_client):
    plain = await staff_client.get("/monitor/users")
    packed = await staff_client.get("/monitor/users", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert packed["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed["Vary"]
    assert gzip.decompress(packed.content) == plain.content
    assert len(packed.content) < len(plain.content) / 3
    refused = await staff_client.get("/monitor/users", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused and refused.content == plain.content


async def test_api_monitor_users_etag_per_board(local, staff_client):
    first = await staff_client.get("/monitor/users")
    etag = first["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")  # strong
    same = await staff_client.get("/monitor/users", headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same["ETag"] == etag
    await current_producer().refresh()  # a new board: the old tag no longer matches
    fresh = await staff_client.get("/monitor/users", headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh["ETag"] != etag
    assert json.loads(fresh.content)["total_active_users"] == len(ODD_IDS)


async def test_api_live_endpoints_are_503_while_no_producer_publishes(local, staff_client, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "PRODUCER_TIMEOUT": 0.0}
    face_get().follower.stale_after = 0.0  # the last board is already too old
    for url in ("/monitor/users", "/api/users/alice", "/api/status"):
        response = await staff_client.get(url)
        assert response.status_code == 503, url
        body = json.loads(response.content)
        producer = body["producer"]
        assert producer["state"] == "absent" and producer["last_publish"] is not None, url
        assert producer["words"].startswith("No producer is publishing: the last board was published at")
    assert "Retry-After" in (await staff_client.get("/monitor/users"))


async def _asgi_get(url: str, token: str) -> tuple[int, bytes]:
    """GET through the real ASGI application; the path is percent-decoded as UTF-8, as Daphne does.

    Django's test clients put a Latin-1 decoded path into the ASGI scope, which garbles
    non-ASCII ids; Daphne percent-decodes as UTF-8, and that is what we must work with.
    """
    communicator = HttpCommunicator(
        application,
        "GET",
        url,
        headers=[(b"authorization", f"Bearer {token}".encode()), (b"host", b"testserver")],
    )
    response = await communicator.get_response(timeout=10)
    return response["status"], response["body"]


@pytest.mark.parametrize("user_id", ODD_IDS)
async def test_api_odd_ids_round_trip(user_id, local, api_tokens):
    url = reverse("usermetrics:api-user", args=[user_id])
    status, body = await _asgi_get(url, api_tokens[0])
    assert status == 200, url
    assert PerUserResourceUsage.model_validate_json(body).user_id == user_id
    status, body = await _asgi_get("/monitor/users?" + urlencode({"user_id": user_id}), api_tokens[0])
    assert [u.user_id for u in PerUserMonitorResponse.model_validate_json(body).users] == [user_id]


async def test_api_unknown_user_is_json_404(local, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-user", args=["nobody/here"]))
    assert response.status_code == 404
    assert json.loads(response.content) == {
        "detail": "No such user in any source or in the history.",
        "user_id": "nobody/here",
    }


@pytest.mark.parametrize("path", ["/api/users/bad~escape", "/api/users/~", "/api/users/a/b", "/api/users/"])
async def test_api_malformed_ids_are_404_never_500(path, local, api_tokens):
    status, _ = await _asgi_get(path, api_tokens[0])
    assert status == 404


async def test_api_undecodable_bytes_are_never_500(local, api_tokens):
    # Daphne turns undecodable percent-escapes into U+FFFD; such an id is simply unknown.
    status, body = await _asgi_get("/api/users/%FF%FE", api_tokens[0])
    assert status == 404 and b"No such user" in body


async def test_api_status(local, staff_client):
    doc = json.loads((await staff_client.get("/api/status")).content)
    assert set(doc) >= {"version", "refresh_interval", "last_refresh", "sources"}
    assert doc["sources"][0]["name"] == "local" and doc["sources"][0]["state"] == "ok"


async def test_api_only_get(local, staff_client):
    assert (await staff_client.post("/monitor/users")).status_code == 405
