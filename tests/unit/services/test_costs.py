"""The cost door: a live user's cost with the prices in force, the fleet's per model, a user's first frame."""

from __future__ import annotations

import json

import pytest

from usermetrics import services

pytestmark = pytest.mark.django_db(transaction=True)


async def test_services_user_cost_get_of_a_companion_user_and_none_for_others(llm_companion):
    board = services.board_get()
    ada = await services.user_cost_get(board=board, user_id="ada")
    assert ada is not None and ada["unpriced"] == ["gpt-unpriced"] and ada["currency"] == "EUR"
    assert await services.user_cost_get(board=board, user_id="dan") is None  # a plain NAT source's user
    assert await services.user_cost_get(board=board, user_id="nobody") is None


async def test_services_fleet_llm_get_once_per_board_and_table(llm_companion, settings):
    board = services.board_get()
    first = await services.fleet_llm_get(board)
    assert [t.model for t in first] == ["gpt-priced", "gpt-unpriced"] and first[1].cost is None
    assert await services.fleet_llm_get(board) is first
    settings.USERMETRICS = {**settings.USERMETRICS, "PRICES": {}}  # another table: worked out again
    assert all(t.cost is None for t in await services.fleet_llm_get(board))


async def test_services_a_users_first_frame_carries_its_cost(llm_companion):
    group = services.feed_subscribe("chan-cost", user_id="ada")
    try:
        text, _, _ = await services.feed_first_frame(group)
        cost = json.loads(text)["extras"]["cost"]
        assert cost["complete"] is False and cost["by_model"]["gpt-unpriced"] is None
    finally:
        services.feed_unsubscribe("chan-cost")
