"""The detail page's Tokens and cost panel (sync): a user's LLM calls, tokens and cost per model, in words.

``static/usermetrics/js/cost.js`` writes the same cells from each user frame's ``extras`` (its
``llm`` and ``cost``); the words are ``humanize``'s, as money.js says them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync

from usermetrics import humanize, services
from usermetrics.extras import USAGE_KEYS


def cost_panel_get(found: services.UserLookup) -> dict[str, Any]:
    """A user's panel: its state ('none', 'ended', 'empty' or 'calls') and, with calls, its rows."""
    if found.ended is not None:
        return {"state": "ended"}
    if found.extras is None:
        return {"state": "none"}  # no NAT companion reports the user: no tokens to show
    cost = async_to_sync(services.user_cost_get)(board=found.board, user_id=found.user_id)
    return cost_panel(found.extras, cost)


def _cells(usage: Mapping[str, int]) -> list[dict[str, Any]]:
    """A model's (or the total's) counts: calls, then prompt, completion, cached, reasoning and total tokens."""
    return [{"key": key, "value": usage[key], "words": humanize.big_number(usage[key])} for key in USAGE_KEYS]


def cost_panel(extras: Mapping[str, Any], cost: Mapping[str, Any] | None) -> dict[str, Any]:
    """The panel of a user a companion reports: one row per model (by name), the total row and the tool calls."""
    llm = extras["llm"]
    by_model = llm["by_model"]
    amounts = cost["by_model"] if cost is not None else {}
    currency = cost["currency"] if cost is not None else ""
    rows = []
    for model in sorted(by_model):
        amount = amounts.get(model)
        rows.append(
            {
                "model": model,
                "cells": _cells(by_model[model]),
                "cost": humanize.NO_PRICE if amount is None else humanize.money_words(amount, currency),
                "priced": amount is not None,
            }
        )
    return {
        "state": "calls" if by_model else "empty",
        "rows": rows,
        "total": _cells(llm),
        "total_cost": humanize.cost_words(cost) if cost is not None and by_model else "",
        "complete": cost is None or cost["complete"],
        "currency": currency,
        "tool_calls": extras["tool_calls"],
    }
