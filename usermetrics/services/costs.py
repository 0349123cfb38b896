"""What users' LLM calls cost now (async): the price table in force over the board's per-model counts.

Every cost the dashboard shows is ``prices.PriceTable.cost`` over the table ``usermetrics.pricing``
keeps (the settings' prices, the admin's over them), put in words by ``figures`` (``cost_doc`` for a
user here and in its frames, ``llm_cells`` for the exports, ``fleet_llm`` for ``/metrics``).
"""

from __future__ import annotations

from typing import Any

from usermetrics.board import Board
from usermetrics.figures import ModelTotal, cost_doc, fleet_llm
from usermetrics.pricing import aprice_table_get

FLEET_LLM = "fleet_llm"  # the board's memo of ``fleet_llm_get``: (the table it used, the totals)


async def user_cost_get(*, board: Board, user_id: str) -> dict[str, Any] | None:
    """A live user's cost now (``figures.cost_doc``); None when no NAT companion reports the user (or it ended)."""
    i = board.index.get(user_id)
    extras = board.extras_at(i) if i is not None else None
    if extras is None:
        return None
    return cost_doc(await aprice_table_get(), extras.llm)


async def fleet_llm_get(board: Board) -> list[ModelTotal]:
    """Every user's LLM counts and cost per model (bounded: ``figures.FLEET_MODELS_MAX``), once per board and table."""
    prices = await aprice_table_get()
    hit = board.memo.get(FLEET_LLM)
    if hit is not None and hit[0] is prices:  # the same board and the same table: the same answer
        return hit[1]
    totals = fleet_llm(board, prices)
    board.memo[FLEET_LLM] = (prices, totals)
    return totals
