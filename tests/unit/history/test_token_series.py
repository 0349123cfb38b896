"""Chart series of tokens and cost: one user's tokens/min and cost/hour, the fleet's; null without tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.extras import Extras
from usermetrics.history.token_series import fleet_cost_series, user_token_series
from usermetrics.pricing import price_table_forget


@pytest.fixture(autouse=True)
def _prices():
    price_table_forget()
    with override_settings(USERMETRICS={"PRICES": {"gpt": {"prompt": 1, "completion": 1}}}):
        yield
    price_table_forget()


@pytest.mark.django_db
def test_token_series_per_minute_and_per_hour_and_null_without_tokens():
    rec = recorder()
    rec.record(snapshot(T0 - MIN, []))
    users = [usage("a", total=1), usage("b", total=1)]
    rec.record(snapshot(T0, users, extras={"a": Extras(llm=(("gpt", (1, 600_000, 0, 0, 0, 600_000)),)), "b": Extras()}))
    doc = user_token_series(user_id="a", window=timedelta(minutes=15), now=T0 + MIN, points=15)  # 1-min buckets
    assert len(doc["t"]) == len(doc["tokens_per_min"]) == len(doc["cost_per_hour"]) == 15
    assert max(doc["tokens_per_min"]) == 600_000 and sum(doc["tokens_per_min"]) == 600_000
    assert max(doc["cost_per_hour"]) == 0.6 * 60  # $0.60 in one minute: $36 an hour
    none = user_token_series(user_id="b", window=timedelta(minutes=15), now=T0 + MIN, points=15)
    assert set(none["tokens_per_min"]) == {None}  # a companion, no LLM call: no chart
    fleet = fleet_cost_series(window=timedelta(minutes=15), now=T0 + MIN, points=15)
    assert fleet["cost_per_hour"] == doc["cost_per_hour"] and fleet["step"] == 60
