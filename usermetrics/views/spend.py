"""The list page's tokens and cost (sync): its Tokens and Cost cells, and the overview's cost panel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import reverse

from usermetrics import humanize, services


def spend_cells(tokens: Any, currency: str) -> dict[str, str]:
    """A row's window tokens and cost cells (``humanize.spend_words``; NO_VALUE for a user no companion reports)."""
    return humanize.spend_words(tokens.as_dict() if tokens is not None else None, currency)


def _top_rows(top: list[tuple[str, Any]], labels: Mapping[str, str], currency: str) -> list[dict[str, str]]:
    return [
        {
            "user_id": uid,
            "display": humanize.user_display(uid, labels),
            "href": reverse("usermetrics:user-detail", args=[uid]),
            **spend_cells(tokens, currency),
        }
        for uid, tokens in top
    ]


def spend_panel(*, window: str, labels: Mapping[str, str], currency: str) -> dict[str, Any] | None:
    """The overview's cost panel: the fleet's last hour, the top users by cost and by tokens (None: nothing to show).

    None too while the database cannot be read (the page's banner says so).
    """
    spend = services.history_or_none(services.spend_overview_get, window=window)
    if spend is None or spend.empty:
        return None
    hour = spend.last_hour.as_dict() if spend.last_hour is not None else None
    by_cost = _top_rows(spend.top_by_cost, labels, currency)
    by_tokens = _top_rows(spend.top_by_tokens, labels, currency)
    return {
        "window": window,
        "last_hour": humanize.spend_words(hour, currency)
        if hour
        else {"cost": humanize.money_words(0, currency), "tokens": "0"},
        "unpriced_words": f"+{hour['unpriced_tokens']:,} tokens unpriced (models without a price)"
        if hour and hour["unpriced_tokens"]
        else "",
        "tops": [("Top by cost", by_cost), ("Top by tokens", by_tokens)],
        "currency": currency,
    }
