"""History documents for the JSON API (async over sync ORM): series, window stats, flags, ended users.

Every window the dashboard knows (5m, 15m, 1h, 24h, 7d) is accepted, the list's rates take the
list's own (5m, 1h, 24h); a name that is not one falls back to the default
(``windows.window_choose``), and every document says which window it used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from asgiref.sync import sync_to_async

from usermetrics.clock import utcnow
from usermetrics.history.query import covered, overview_stats
from usermetrics.history.series import overview_series, sparklines, user_series
from usermetrics.history.spend import fleet_tokens, window_tokens
from usermetrics.history.token_series import fleet_cost_series, user_token_series
from usermetrics.windows import RATE_WINDOWS, window_choose, window_length

from .live import board_get
from .pages import rows_window, user_lookup, user_window

# The most user ids one sparklines or list-window request may ask for (a page of the list).
MAX_USERS = 500


async def user_history_doc(*, user_id: str, window: str | None) -> dict[str, Any] | None:
    """One user's chart series (tokens/min and cost/hour too), window stats, flags and lives, and ``ended``.

    None when the user is not found (the not-found rule of ``pages.user_lookup``).
    """
    name = window_choose(window)
    found = await sync_to_async(user_lookup)(board_get(), user_id)
    if found is None:
        return None
    now = utcnow()  # one time axis for the request and the token series
    doc = await sync_to_async(user_series)(user_id=user_id, window=window_length(name), now=now)
    spend = await sync_to_async(user_token_series)(user_id=user_id, window=window_length(name), now=now)
    doc.update(tokens_per_min=spend["tokens_per_min"], cost_per_hour=spend["cost_per_hour"])
    tokens = await sync_to_async(window_tokens)(window=window_length(name), user_ids=[user_id], now=now)
    doc["tokens"] = tokens[user_id].as_dict() if user_id in tokens else None
    own = await sync_to_async(user_window)(found, window=name)
    doc["stats"] = own.stats.as_dict()
    doc["flags"] = [asdict(f) for f in own.flags]
    doc["ended"] = None
    if found.ended is not None:
        doc["ended"] = {
            "ended_at": found.ended.ended_at.isoformat(),
            "label": found.ended.ended_ago(),
            "last": found.ended.usage.model_dump(mode="json"),
        }
    return doc


async def overview_history_doc(*, window: str | None) -> dict[str, Any]:
    """Everyone's chart series (the fleet's tokens/min and cost/hour too) and window stats."""
    length = window_length(window_choose(window))
    now = utcnow()
    doc = await sync_to_async(overview_series)(window=length, now=now)
    spend = await sync_to_async(fleet_cost_series)(window=length, now=now)
    doc.update(tokens_per_min=spend["tokens_per_min"], cost_per_hour=spend["cost_per_hour"])
    fleet = await sync_to_async(fleet_tokens)(window=length, now=now)
    doc["tokens"] = fleet.as_dict() if fleet is not None else None
    doc["stats"] = (await sync_to_async(overview_stats)(window=length)).as_dict()
    return doc


async def sparklines_doc(*, user_ids: Sequence[str], window: str | None) -> dict[str, Any]:
    """Requests/min series of ``user_ids`` (at most ``MAX_USERS``)."""
    name = window_choose(window)
    users = await sync_to_async(sparklines)(user_ids=list(user_ids)[:MAX_USERS], window=window_length(name))
    return {"window": name, "users": users}


async def rows_window_doc(*, user_ids: Sequence[str], window: str | None) -> dict[str, Any]:
    """Rates, flags and sparklines of the list's visible rows (at most ``MAX_USERS``)."""
    name = window_choose(window, RATE_WINDOWS)
    rows = await sync_to_async(rows_window)(board_get(), user_ids=list(user_ids)[:MAX_USERS], window=name)
    span = await sync_to_async(covered)(window_length(name), utcnow())
    return {"window": name, "span": span.as_dict(), "users": {uid: row.as_dict() for uid, row in rows.items()}}
