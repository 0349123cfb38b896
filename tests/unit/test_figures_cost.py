"""Costs as the faces show them: a user's cost document, the exports' cells, the fleet's per-model totals."""

from __future__ import annotations

import pytest

from tests.support.factories import board_of, extras_of, record
from usermetrics.extras import Extras
from usermetrics.figures import OTHER, cost_doc, fleet_llm, llm_cells, user_extras
from usermetrics.prices import price_table_parse

TABLE = price_table_parse({"a": {"prompt": 1, "completion": 4, "cached": 0.25}}, "USD")
LLM = (("a", (2, 1000, 200, 400, 50, 1200)), ("b", (1, 10, 5, 0, 0, 15)))
COST_A = (600 * 1 + 400 * 0.25 + 200 * 4) / 1e6


def test_figures_cost_doc_adds_the_priced_and_names_the_unpriced():
    assert cost_doc(TABLE, LLM) == {
        "currency": "USD",
        "total": pytest.approx(COST_A),
        "complete": False,
        "unpriced": ["b"],
        "by_model": {"a": pytest.approx(COST_A), "b": None},
    }
    assert cost_doc(TABLE, ())["complete"] is True


def test_figures_user_extras_carries_the_cost_only_with_a_table():
    board = board_of([record("ada"), record("cy")], extras={"ada": extras_of([1.0], llm=LLM)})
    assert "cost" not in user_extras(board, "ada")
    assert user_extras(board, "ada", prices=TABLE)["cost"]["unpriced"] == ["b"]
    assert user_extras(board, "cy", prices=TABLE) is None


def test_figures_llm_cells_empty_without_a_companion_and_no_cost_when_nothing_is_priced():
    assert llm_cells(None, TABLE) == (None,) * 10
    assert llm_cells(Extras(llm=LLM, tool_calls=3), TABLE) == (3, 1010, 205, 400, 50, 1215, 3, COST_A, "USD", False)
    assert llm_cells(Extras(llm=LLM[1:]), TABLE)[-3:] == (None, None, False)
    assert llm_cells(Extras(), TABLE)[-3:] == (0.0, "USD", True)


def test_figures_fleet_llm_sums_per_model_and_bounds_the_models():
    users = [record(f"u{i}") for i in range(5)]
    extras = {f"u{i}": extras_of([], llm=((f"m{i}", (1, 10 * i, 1, 0, 0, 10 * i + 1)), LLM[0])) for i in range(5)}
    board = board_of(users, extras=extras)
    totals = fleet_llm(board, TABLE, limit=3)
    assert [t.model for t in totals] == ["a", "m3", "m4", OTHER]  # the most tokens kept, by name; the rest as other
    a = totals[0]
    assert a.usage == (10, 5000, 1000, 2000, 250, 6000) and a.cost == pytest.approx(5 * COST_A)
    assert totals[-1].usage[0] == 3 and totals[-1].cost is None  # m0, m1, m2: unpriced
    assert fleet_llm(board_of([record("x")]), TABLE) == []
