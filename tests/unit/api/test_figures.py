"""The NAT companions' figures in the JSON API: one user, the exports, the sources, the schema; never /monitor/users."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from usermetrics.api.schemas import SourcesDoc, UserDoc, UserExportRow
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage

pytestmark = pytest.mark.django_db(transaction=True)


async def _body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join([chunk async for chunk in response.streaming_content])


async def test_api_user_carries_latency_queue_and_workers(companion, staff_client):
    response = await staff_client.get("/api/users/ada")
    assert response.status_code == 200
    doc = json.loads(response.content)
    assert 750 < doc["latency"]["p95_ms"] <= 1000 and doc["latency"]["p50_ms"] <= 50
    assert doc["latency"]["requests"] == 100
    assert doc["latency"]["buckets"] == [
        {"gt_ms": 30, "le_ms": 50, "count": 90},
        {"gt_ms": 750, "le_ms": 1000, "count": 10},
    ]
    assert doc["queue"] == {"queued": 2, "max_concurrency": 16, "wait_ms": 300.0, "run_ms": 900.0, "wait_share": 0.25}
    assert doc["workers"] == ["nat-1:101", "nat-1:102"]
    assert doc["llm"]["calls"] == 0 and doc["llm"]["by_model"] == {} and doc["tool_calls"] == 0
    # Still NAT's record for a client of NAT's model, and what the schema says.
    assert PerUserResourceUsage.model_validate_json(response.content).user_id == "ada"
    UserDoc.model_validate_json(response.content)


async def test_api_user_without_a_companion_has_null_figures(companion, staff_client):
    doc = json.loads((await staff_client.get("/api/users/cy")).content)
    assert (doc["latency"], doc["queue"], doc["workers"], doc["llm"], doc["tool_calls"]) == (None,) * 5
    assert doc["requests"]["total_requests"] == 5


async def test_api_monitor_users_stays_nats_document(companion, staff_client):
    body = (await staff_client.get("/monitor/users")).content
    doc = json.loads(body)
    assert set(doc) == {"timestamp", "total_active_users", "users"}
    assert all(set(u) == {"user_id", "session", "requests", "memory"} for u in doc["users"])
    PerUserMonitorResponse.model_validate_json(body)


async def test_api_exports_carry_the_percentiles_and_queued(companion, staff_client):
    query = {"sort": "user_id"}
    response = await staff_client.get(reverse("usermetrics:api-export-users-csv"), query)
    table = {r["user_id"]: r for r in csv.DictReader(io.StringIO((await _body(response)).decode()))}
    assert table["ada"]["queued"] == "2" and 750 < float(table["ada"]["p95_ms"]) <= 1000
    assert float(table["ada"]["p50_ms"]) <= float(table["ada"]["p95_ms"]) <= float(table["ada"]["p99_ms"])
    assert (table["cy"]["p50_ms"], table["cy"]["p95_ms"], table["cy"]["p99_ms"], table["cy"]["queued"]) == ("",) * 4
    response = await staff_client.get(reverse("usermetrics:api-export-users-json"), query)
    rows = {r["user_id"]: r for r in json.loads(await _body(response))}
    assert rows["bob"]["queued"] == 0 and rows["bob"]["p95_ms"] <= 3
    assert rows["cy"]["p95_ms"] is None and rows["cy"]["queued"] is None
    for row in rows.values():
        UserExportRow.model_validate(row)


async def test_api_sources_list_a_companion_streams_workers(companion, staff_client):
    response = await staff_client.get(reverse("usermetrics:api-sources"))
    doc = SourcesDoc.model_validate_json(response.content)
    by_name = {s.name: s for s in doc.sources}
    assert [w.label for w in by_name["nat"].workers] == ["nat-1:101", "nat-1:99"]
    assert by_name["nat"].skipped == {"garbage": 2}
    assert by_name["plain"].workers is None


async def test_api_schema_describes_the_figures(staff_client):
    schema = json.loads((await staff_client.get(reverse("usermetrics:api-openapi"))).content)
    parts = schema["components"]["schemas"]
    assert {"p50_ms", "p95_ms", "p99_ms", "requests", "buckets"} <= set(parts["LatencyDoc"]["properties"])
    assert "queued" in parts["QueueDoc"]["properties"] and "latency" in parts["UserDoc"]["properties"]
    assert {"p50_ms", "p95_ms", "p99_ms", "queued"} <= set(parts["UserExportRow"]["properties"])
    assert "workers" in parts["SourceHealthDoc"]["properties"] or "workers" in parts["SourceDoc"]["properties"]
    ok = schema["paths"]["/api/users/{user_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/UserDoc")
