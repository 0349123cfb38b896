"""Tokens and cost in the JSON API, the exports and /metrics: the prices in force, "no price" never made up."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.http import StreamingHttpResponse
from django.test import AsyncClient
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.conftest import LLM_ADA, LLM_BOB
from usermetrics.api.schemas import UserDoc, UserExportRow
from usermetrics.models import ModelPrice

pytestmark = pytest.mark.django_db(transaction=True)

# By the docs' formula (docs/costs.md), per million: (prompt - cached) x 2 + cached x 0.5 + completion x 8.
ADA_PRICED = ((3000 - 1000) * 2 + 1000 * 0.5 + 600 * 8) / 1e6
BOB_PRICED = (1_000_000 * 2 + 2_000_000 * 8) / 1e6
TOKEN = "scrape-" + "c" * 30


async def _body(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join([chunk async for chunk in response.streaming_content])


async def test_api_user_carries_its_cost_next_to_its_llm(llm_companion, staff_client):
    response = await staff_client.get("/api/users/ada")
    doc = json.loads(response.content)
    assert doc["llm"]["prompt_tokens"] == 3500 and doc["llm"]["completion_tokens"] == 700
    assert doc["llm"]["by_model"]["gpt-unpriced"]["calls"] == 2 and doc["tool_calls"] == 5
    assert doc["cost"] == {
        "currency": "EUR",
        "total": pytest.approx(ADA_PRICED, rel=1e-12),
        "complete": False,
        "unpriced": ["gpt-unpriced"],
        "by_model": {"gpt-priced": pytest.approx(ADA_PRICED, rel=1e-12), "gpt-unpriced": None},
    }
    UserDoc.model_validate_json(response.content)
    bob = json.loads((await staff_client.get("/api/users/bob")).content)["cost"]
    assert bob["total"] == pytest.approx(BOB_PRICED) and bob["complete"] and bob["unpriced"] == []


async def test_api_user_cost_of_no_calls_is_zero_and_of_no_companion_null(llm_companion, staff_client):
    cy = json.loads((await staff_client.get("/api/users/cy")).content)["cost"]
    assert cy == {"currency": "EUR", "total": 0.0, "complete": True, "unpriced": [], "by_model": {}}
    dan = json.loads((await staff_client.get("/api/users/dan")).content)
    assert dan["cost"] is None and dan["llm"] is None


async def test_api_user_cost_takes_a_price_saved_in_the_admin_at_once(llm_companion, staff_client):
    await sync_to_async(ModelPrice.objects.create)(
        model="gpt-unpriced", prompt=Decimal(1), completion=Decimal(2), currency="EUR"
    )
    cost = json.loads((await staff_client.get("/api/users/ada")).content)["cost"]
    extra = (500 * 1 + 100 * 2) / 1e6  # cached defaults to the prompt price
    assert cost["complete"] and cost["by_model"]["gpt-unpriced"] == pytest.approx(extra)
    assert cost["total"] == pytest.approx(ADA_PRICED + extra)


async def test_api_schema_describes_the_cost(staff_client):
    parts = json.loads((await staff_client.get(reverse("usermetrics:api-openapi"))).content)["components"]["schemas"]
    assert {"currency", "total", "complete", "unpriced", "by_model"} <= set(parts["CostDoc"]["properties"])
    assert "cost" in parts["UserDoc"]["properties"]
    assert {"prompt_tokens", "cost", "cost_currency", "cost_complete"} <= set(parts["UserExportRow"]["properties"])


async def test_api_exports_carry_tokens_tool_calls_and_cost(llm_companion, staff_client):
    query = {"sort": "user_id"}
    response = await staff_client.get(reverse("usermetrics:api-export-users-json"), query)
    rows = {r["user_id"]: r for r in json.loads(await _body(response))}
    ada = rows["ada"]
    assert (ada["llm_calls"], ada["prompt_tokens"], ada["cached_tokens"]) == (5, 3500, 1000)
    assert ada["reasoning_tokens"] == 200
    assert (ada["total_tokens"], ada["tool_calls"], ada["cost_currency"]) == (4200, 5, "EUR")
    assert ada["cost"] == pytest.approx(ADA_PRICED) and ada["cost_complete"] is False
    assert rows["bob"]["cost"] == pytest.approx(BOB_PRICED) and rows["bob"]["cost_complete"] is True
    assert (rows["cy"]["llm_calls"], rows["cy"]["cost"], rows["cy"]["cost_complete"]) == (0, 0.0, True)
    assert all(rows["dan"][k] is None for k in ("llm_calls", "tool_calls", "cost", "cost_currency", "cost_complete"))
    for row in rows.values():
        UserExportRow.model_validate(row)
    response = await staff_client.get(reverse("usermetrics:api-export-users-csv"), query)
    table = {r["user_id"]: r for r in csv.DictReader(io.StringIO((await _body(response)).decode()))}
    assert table["ada"]["completion_tokens"] == "700" and float(table["ada"]["cost"]) == pytest.approx(ADA_PRICED)
    assert (table["dan"]["cost"], table["dan"]["prompt_tokens"]) == ("", "")


async def test_api_exports_leave_the_cost_empty_when_nothing_is_priced(llm_companion, staff_client, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "PRICES": {}}
    response = await staff_client.get(reverse("usermetrics:api-export-users-json"), {"sort": "user_id"})
    ada = {r["user_id"]: r for r in json.loads(await _body(response))}["ada"]
    assert (ada["cost"], ada["cost_currency"], ada["cost_complete"], ada["llm_calls"]) == (None, None, False, 5)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_prometheus_llm_families_per_model_never_per_user(llm_companion, settings):
    settings.USERMETRICS = {**settings.USERMETRICS, "METRICS_TOKENS": [TOKEN]}
    text = (await AsyncClient().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).content.decode()
    assert all(f'"{uid}"' not in text for uid in ("ada", "bob", "cy", "dan"))
    got = _samples(text)
    priced = dict(LLM_ADA)["gpt-priced"]
    assert got[("usermetrics_llm_calls", (("model", "gpt-priced"),))] == priced[0] + LLM_BOB[0][1][0]
    assert got[("usermetrics_llm_calls", (("model", "gpt-unpriced"),))] == 2
    tokens = {k: v for (name, k), v in got.items() if name == "usermetrics_llm_tokens"}
    assert tokens[(("kind", "prompt"), ("model", "gpt-priced"))] == 3000 + 1_000_000
    assert tokens[(("kind", "cached"), ("model", "gpt-priced"))] == 1000
    assert tokens[(("kind", "reasoning"), ("model", "gpt-unpriced"))] == 0
    assert {dict(k)["kind"] for k in tokens} == {"prompt", "completion", "cached", "reasoning"}
    costs = {k: v for (name, k), v in got.items() if name == "usermetrics_llm_cost"}
    assert costs == {(("currency", "EUR"), ("model", "gpt-priced")): pytest.approx(ADA_PRICED + BOB_PRICED)}
    assert got[("usermetrics_tool_calls", ())] == 7
    types = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert types["usermetrics_llm_tokens"] == types["usermetrics_llm_cost"] == "gauge"  # as usermetrics_requests
