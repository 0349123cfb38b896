"""Every /api/ answer is JSON: paths that match no route are JSON 404s, methods a route does not serve JSON 405s."""

from __future__ import annotations

import json

import pytest
from django.test import AsyncClient

from tests.support.factories import StaticSource, usage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    "path",
    ["/api", "/api/", "/api/nope", "/api/users/", "/api/users/a/b/c", "/api/users/bad~escape", "/api/status/extra"],
)
@pytest.mark.parametrize("staff", [False, True])
async def test_api_errors_unrouted_paths_are_json_404s(staff_client, path, staff):
    client = staff_client if staff else AsyncClient()
    response = await client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["detail"] == f"No API endpoint at {path}; see /api/openapi.json."


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
@pytest.mark.parametrize("path", ["/api/status", "/api/users/alice", "/api/export/users.csv", "/api/openapi.json"])
async def test_api_errors_wrong_methods_are_json_405s(staff_client, method, path):
    response = await getattr(staff_client, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    doc = json.loads(response.content)
    assert doc["detail"] == f"Method {method.upper()} is not allowed here."
    assert "GET" in doc["allow"] and response["Allow"] == ", ".join(doc["allow"])


async def test_api_errors_leave_the_apis_own_json_404_and_other_paths_alone(install_service, staff_client):
    await install_service([StaticSource("static", [usage("alice")])], interval=3600)
    unknown = await staff_client.get("/api/users/nobody")
    assert unknown.status_code == 404  # the API's own answer, with its own fields
    assert json.loads(unknown.content)["user_id"] == "nobody"
    page = await staff_client.get("/no-such-page/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")
