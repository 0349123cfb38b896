"""The OpenAPI schema (django-ninja): every endpoint, from the classes the endpoints return, for staff or a token."""

from __future__ import annotations

import json

import pytest

from tests.support.factories import API_PATHS, PYPROJECT_VERSION


@pytest.mark.django_db(transaction=True)
async def test_openapi_schema_is_generated_for_every_endpoint(async_client, api_tokens):
    response = await async_client.get("/api/openapi.json", headers={"Authorization": f"Bearer {api_tokens[0]}"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == API_PATHS
    # From the same pydantic classes the endpoints return: NAT's own for NAT's endpoint.
    monitor = schema["paths"]["/monitor/users"]["get"]["responses"]
    assert monitor["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/PerUserMonitorResponse")
    assert "304" in monitor and "ETag" in monitor["200"]["headers"]
    assert {"PerUserResourceUsage", "StatusDoc", "UserHistoryDoc", "ErrorDetail"} <= set(
        schema["components"]["schemas"]
    )
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "session"}
    assert schema["info"]["version"] == PYPROJECT_VERSION


@pytest.mark.django_db(transaction=True)
async def test_openapi_schema_needs_staff_or_a_token(async_client):
    response = await async_client.get("/api/openapi.json")
    assert response.status_code == 401 and json.loads(response.content)["detail"]
