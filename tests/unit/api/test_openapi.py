"""The OpenAPI schema (django-ninja) and its docs page; schemathesis against a real Daphne: no 500s, bodies match."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.daphne import Daphne, http_get, manage, server_env, wait_until
from tests.support.factories import PYPROJECT_VERSION
from tests.support.machine import free_port

TOKEN = "schema-test-token-" + "q" * 24
ODD_ID = "a/b ~.c"
PATHS = {
    "/monitor/users",
    "/api/users/{user_id}",
    "/api/status",
    "/api/sources",
    "/api/users/{user_id}/history",
    "/api/users/{user_id}/history.csv",
    "/api/users/{user_id}/history.json",
    "/api/overview/history",
    "/api/sparklines",
    "/api/list/window",
    "/api/export/users.csv",
    "/api/export/users.json",
}


@pytest.mark.django_db(transaction=True)
async def test_api_schema_is_generated_for_every_endpoint(async_client, api_tokens):
    response = await async_client.get("/api/openapi.json", headers={"Authorization": f"Bearer {api_tokens[0]}"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == PATHS
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
async def test_api_schema_needs_staff_or_a_token(async_client):
    response = await async_client.get("/api/openapi.json")
    assert response.status_code == 401 and json.loads(response.content)["detail"]


@pytest.mark.django_db(transaction=True)
async def test_api_docs_page_is_staff_only_and_vendored(async_client, staff_client):
    anonymous = await async_client.get("/api/docs/")
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    page = (await staff_client.get("/api/docs/")).content.decode()
    assert "usermetrics/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "usermetrics/js/apidocs.js" in page and 'data-schema-url="/api/openapi.json"' in page
    assert "https://" not in page.split("<body", 1)[1].split("</body>", 1)[0].replace("https://www.djangoproject", "")


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """Daphne with the demo workload (and an odd id), a token, and a history a few refreshes long."""
    var = tmp_path_factory.mktemp("schema-var")
    env = server_env(
        var,
        USERMETRICS_API_TOKENS=TOKEN,
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_USERS="8",
        USERMETRICS_DEMO_EXTRA_USERS=ODD_ID,
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="1",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    server = Daphne(free_port(), env, var / "daphne.log")
    server.start()
    try:
        wait_until(lambda: http_get(server.base + "/api/status", TOKEN)[0] == 200, what="a published board")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api_schema(api_server: Daphne) -> schemathesis.BaseSchema:
    """The schema as the server serves it, loaded over HTTP with the token."""
    loaded = schemathesis.openapi.from_url(
        api_server.base + "/api/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    loaded.config.update(base_url=api_server.base)  # generated requests go to the same server
    return loaded


# A bounded number of cases per operation keeps the suite fast (about 11 x 15 requests); every
# check schemathesis has runs on each: no 5xx, status codes, content types, headers and bodies
# as the schema says. (schemathesis' own pytest loader does not run under this pytest; the
# operations' strategies are driven with hypothesis directly, which is what it does.)
CASES = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_api_schema_schemathesis_no_server_errors_and_bodies_match(api_schema, api_server):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} == PATHS
    for operation in operations:

        @CASES
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api_server.base, headers={"Authorization": f"Bearer {TOKEN}"})

        check()
