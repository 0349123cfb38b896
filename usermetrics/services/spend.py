"""Tokens and cost over a window for the pages (sync): the list's window sort, the rows' sums, the overview.

What a window's tokens and cost are comes from the history (``history.spend``: what the
recorder wrote with each sample, priced when used); this module orders the list by them and
gathers the overview's fleet cost and top users. A user a companion reports but that made no
LLM call in the window has an empty sum (0 tokens); a user no companion reports has none ("—").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.figures import row_figures
from usermetrics.history.spend import COST, TOKENS, fleet_tokens, life_users, top_users, window_tokens, window_totals
from usermetrics.history.tokens import TokenSum
from usermetrics.pricing import price_table_get
from usermetrics.selection import WINDOW_SORT_KEYS, memoized
from usermetrics.windows import window_length

T = TypeVar("T")

# Which of ``history.spend.window_totals``' pair each window sort key reads.
_SORT_INDEX = {"w_tokens": 0, "w_cost": 1}
HOUR = timedelta(hours=1)


def currency_get() -> str:
    """The currency every cost is in (the price table's one)."""
    return price_table_get().currency


def is_window_sort(sort: str) -> bool:
    """Whether ``sort`` orders by the window's tokens or cost (the history orders those, not the board)."""
    return sort.removeprefix("-") in WINDOW_SORT_KEYS


def window_ordered(
    items: Sequence[T], user_of: Callable[[T], str], *, sort: str, totals: dict[str, tuple[int, int]]
) -> list[T]:
    """``items`` (in user-id order) by their window tokens or cost, as ``sort`` says; users without any come last.

    Stable: ties keep the user-id order, as every other sort (``selection.order_by``).
    """
    index = _SORT_INDEX[sort.removeprefix("-")]
    found = [item for item in items if user_of(item) in totals]
    found.sort(key=lambda item: totals[user_of(item)][index], reverse=sort.startswith("-"))
    return found + [item for item in items if user_of(item) not in totals]


def board_window_order(board: Board, positions: Sequence[int], *, sort: str, window: str) -> list[int]:
    """The board positions (filtered, in user-id order) ordered by the window's tokens or cost.

    Every user's sums are one grouped query, read once per board and window (the board's memo).
    """
    totals = memoized(board, ("window-totals", window), lambda: window_totals(window=window_length(window)))
    return window_ordered(positions, board.ids.__getitem__, sort=sort, totals=totals)


def ended_window_order(pks: Sequence[int], *, sort: str, window: str) -> list[int]:
    """The ended users' life keys (in user-id order) ordered by the window's tokens or cost."""
    users = life_users(pks)
    totals = window_totals(window=window_length(window), user_ids=users.values())
    return window_ordered(pks, lambda pk: users.get(pk, ""), sort=sort, totals=totals)


def rows_tokens(board: Board, *, user_ids: Sequence[str], window: str, now: datetime) -> dict[str, TokenSum | None]:
    """Each user's tokens and cost over ``window``; an empty sum for a companion's user without, None without one."""
    found = window_tokens(window=window_length(window), user_ids=user_ids, now=now)
    return {uid: found.get(uid) or (TokenSum() if row_figures(board, uid) is not None else None) for uid in user_ids}


@dataclass
class SpendOverview:
    """The overview's cost: the fleet's last hour (its chart reads the overview's series), the window's top users."""

    currency: str
    last_hour: TokenSum | None  # None: no companion's tokens in the last hour
    top_by_cost: list[tuple[str, TokenSum]]
    top_by_tokens: list[tuple[str, TokenSum]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "currency": self.currency,
            "last_hour": self.last_hour.as_dict() if self.last_hour is not None else None,
            "top_by_cost": [{"user_id": uid, **s.as_dict()} for uid, s in self.top_by_cost],
            "top_by_tokens": [{"user_id": uid, **s.as_dict()} for uid, s in self.top_by_tokens],
        }

    @property
    def empty(self) -> bool:
        """No companion's tokens in the last hour nor in the window: nothing to show."""
        return self.last_hour is None and not self.top_by_cost and not self.top_by_tokens


def spend_overview_get(*, window: str, limit: int = 5, now: datetime | None = None) -> SpendOverview:
    """The fleet's tokens and cost over the last hour, and the top users by cost and by tokens over ``window``."""
    now = now or utcnow()
    top = top_users(window=window_length(window), by=(COST, TOKENS), limit=limit, now=now)
    return SpendOverview(
        currency=price_table_get().currency,
        last_hour=fleet_tokens(window=HOUR, now=now),
        top_by_cost=top[COST],
        top_by_tokens=top[TOKENS],
    )
