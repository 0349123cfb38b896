"""The OpenAPI schema against a real Daphne: schemathesis finds no server error and every body matches the schema."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.support.daphne import Daphne, http_get, manage, server_env, serving, wait_until
from tests.support.factories import API_PATHS

TOKEN = "schema-test-token-" + "q" * 24
ODD_ID = "a/b ~.c"


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    """Daphne with the demo workload (and an odd id), a token that reads and acts, and a history a few refreshes
    long."""
    var = tmp_path_factory.mktemp("schema-var")
    env = server_env(
        var,
        USERMETRICS_API_TOKENS=TOKEN,
        # The token may act too, so that the actions' bodies are tried (no companion stream: nothing is sent).
        USERMETRICS_ACTIONS_TOKENS=TOKEN,
        USERMETRICS_DEMO="1",
        USERMETRICS_DEMO_USERS="8",
        USERMETRICS_DEMO_EXTRA_USERS=ODD_ID,
        USERMETRICS_REFRESH_INTERVAL="0.5",
        USERMETRICS_HISTORY_SAMPLE_INTERVAL="1",
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    with serving(env, var / "daphne.log") as server:
        wait_until(lambda: http_get(server.base + "/api/status", TOKEN)[0] == 200, what="a published board")
        yield server


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
    assert {op.path for op in operations} == API_PATHS
    for operation in operations:

        @CASES
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api_server.base, headers={"Authorization": f"Bearer {TOKEN}"})

        check()
