"""What the pages show (sync): the user list, one user, and the one rule for "no such user".

Each function reads the latest published board and, with the history on, the store (window
rates, flags, sparklines, ended users) for the rows it returns only. Views render the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from django.db import DatabaseError

from usermetrics.board import Board
from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.figures import row_figures, user_extras
from usermetrics.history.ended import EndedUser, ended_page, ended_select, ended_user_get
from usermetrics.history.flags import Flag, flag_stats, users_flags
from usermetrics.history.query import WindowStats, covered, window_stats
from usermetrics.history.series import sparklines
from usermetrics.history.tokens import TokenSum
from usermetrics.humanize import HISTORY_UNAVAILABLE
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.outage import UNREACHABLE
from usermetrics.selection import ENDED, Summary, ViewResult, ViewSpec, page_of, summary_get, view_filter, view_select
from usermetrics.windows import window_length

from .names import labels_get
from .spend import board_window_order, ended_window_order, is_window_sort, rows_tokens

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def history_or_none(read: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
    """``read(...)``, or None while the database is unreachable: the page shows its live part and says so.

    Only an outage (``outage.UNREACHABLE``) is caught; any other error is a bug and stays a 500.
    """
    try:
        return read(*args, **kwargs)
    except UNREACHABLE as exc:
        logger.warning("%s: %s (%s)", getattr(read, "__name__", read), HISTORY_UNAVAILABLE, exc)
        return None


@dataclass
class RowWindow:
    """What the list shows of one user's window: its rates, flags, activity sparkline, tokens and cost."""

    stats: WindowStats
    flags: list[Flag]
    sparkline: list[float]
    tokens: TokenSum | None = None  # None: no NAT companion reports the user (``spend.rows_tokens``)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "stats": self.stats.as_dict(),
            "flags": [asdict(f) for f in self.flags],
            "sparkline": self.sparkline,
            "tokens": self.tokens.as_dict() if self.tokens is not None else None,
        }


def rows_window(
    board: Board, *, user_ids: Sequence[str], window: str, now: datetime | None = None
) -> dict[str, RowWindow]:
    """Rates, flags, sparklines, tokens and cost of a page of users (a few queries whatever the page size).

    Only ``user_ids`` are read, never every user. Flags look at their own window
    (``FLAGS["WINDOW"]``); users the board does not hold (ended users) get rates and a sparkline
    but no flags.
    """
    now = now or utcnow()
    ids = list(dict.fromkeys(user_ids))
    length = window_length(window)
    stats = window_stats(window=length, user_ids=ids, now=now)
    flags = users_flags(board, ids, now=now, stats=flag_stats(ids, now=now, have=(window, stats)))
    lines = sparklines(user_ids=ids, window=length, now=now)
    tokens = rows_tokens(board, user_ids=ids, window=window, now=now)
    empty = covered(length, now)
    return {
        uid: RowWindow(stats=stats.get(uid, empty), flags=flags.get(uid, []), sparkline=lines[uid], tokens=tokens[uid])
        for uid in ids
    }


@dataclass
class Row:
    """One row of the user table."""

    usage: PerUserResourceUsage
    ended: EndedUser | None = None
    window: RowWindow | None = None
    # What NAT companions say of the user (``figures.row_figures``); None for other sources' users.
    figures: dict[str, float | int | None] | None = None


@dataclass
class ListPage:
    """The user list: the view, its page of rows, and what the cards and the empty table say."""

    board: Board
    spec: ViewSpec
    result: ViewResult
    rows: list[Row]
    summary: Summary
    labels: Mapping[str, str]
    history_enabled: bool
    empty_reason: str | None
    # The span the rates cover (``history.query.covered``): less than the window right after a start.
    span: WindowStats | None = None
    # The history is on but the database cannot be read: the page is the live part only.
    history_unavailable: bool = False


def _empty_reason(board: Board, result: ViewResult, publishing: bool) -> str | None:
    """Why the table is empty, in words (None when it is not)."""
    if result.users:
        return None
    if result.spec.state == ENDED:
        return "No user ended within the retention period, or none matches this search."
    if not publishing and not board.seq:
        return "No producer is publishing yet, so there are no users to show."
    if not board.sources:
        return "No sources are configured, so there are no users to show."
    if not len(board):
        if all(s.state != "ok" for s in board.sources):
            return "Every source is down: there is no data to show. See the sources above for their errors."
        return "No users yet: no source reports a per-user workflow."
    return "No user matches this search and filter."


def ended_view(spec: ViewSpec, labels: Mapping[str, str]) -> tuple[ViewResult, dict[str, EndedUser]]:
    """A page of the ended users (from the history store); only the page's rows are read."""
    pks = ended_select(q=spec.q, sort=spec.sort, labels=labels)
    if is_window_sort(spec.sort):
        pks = ended_window_order(pks, sort=spec.sort, window=spec.window)
    result = page_of(pks, spec)
    ended = ended_page(result.users)
    return replace(result, users=[e.usage for e in ended]), {e.user_id: e for e in ended}


def list_page_get(board: Board, *, spec: ViewSpec, publishing: bool = True) -> ListPage:
    """Every user of ``board`` as the list page shows it: ``spec``'s page, with its rows' window.

    ``result.users`` are the page's records (decoded from the board, or ended users' last values).
    """
    labels = labels_get()
    enabled = get_config().history.enabled
    unavailable = False
    ended: dict[str, EndedUser] = {}
    if spec.state == ENDED and enabled:
        found = history_or_none(ended_view, spec, labels)
        unavailable = found is None
        result, ended = found or (page_of([], spec), {})
    else:
        if is_window_sort(spec.sort) and enabled:
            # The window's tokens or cost: no board holds them, the history orders the filtered users.
            found_order = history_or_none(
                board_window_order, board, view_filter(board, spec, labels=labels), sort=spec.sort, window=spec.window
            )
            unavailable = found_order is None
            positions = page_of(view_filter(board, spec, labels=labels) if found_order is None else found_order, spec)
        else:
            positions = view_select(board, spec, labels=labels)
        result = replace(positions, users=[board.usage_at(i) for i in positions.users])
    windows: dict[str, RowWindow] | None = {}
    span = None
    if enabled and not unavailable:
        if result.users:
            ids = [u.user_id for u in result.users]
            windows = history_or_none(rows_window, board, user_ids=ids, window=result.spec.window)
        span = history_or_none(covered, window_length(result.spec.window), utcnow())
        unavailable = windows is None or span is None
    rows = [
        Row(
            u,
            ended=ended.get(u.user_id),
            window=(windows or {}).get(u.user_id),
            figures=None if u.user_id in ended else row_figures(board, u.user_id),
        )
        for u in result.users
    ]
    return ListPage(
        board=board,
        spec=result.spec,  # a page past the end is shown as the last page
        result=result,
        rows=rows,
        summary=summary_get(board),
        labels=labels,
        history_enabled=enabled and not unavailable,
        empty_reason=HISTORY_UNAVAILABLE
        if unavailable and not result.users
        else _empty_reason(board, result, publishing),
        span=None if unavailable else span,
        history_unavailable=unavailable,
    )


@dataclass
class UserLookup:
    """A user someone asked for: live in a source now, or ended and still kept by the history."""

    user_id: str
    board: Board
    usage: PerUserResourceUsage  # live, or the last known values of an ended user
    ended: EndedUser | None
    origins: tuple[str, ...] = field(default=())
    # What NAT companions say of a live user (``figures.extras_public``); None without one, or ended.
    extras: dict[str, Any] | None = None


def user_lookup(board: Board, user_id: str) -> UserLookup | None:
    """The one "not found" rule: a user is found while a source reports it or the history keeps it.

    A user no source reports, asked while the database is unreachable, is neither found nor not
    found: the outage error goes on, and the page or the API answers 503 saying so.
    """
    usage = board.user(user_id)
    if usage is not None:
        return UserLookup(user_id, board, usage, None, board.origins(user_id), user_extras(board, user_id))
    ended = None
    if get_config().history.enabled:
        try:
            ended = ended_user_get(user_id=user_id)
        except UNREACHABLE:
            raise  # not "not found": the page or the API says the database cannot be reached (a 503)
        except DatabaseError:
            # The live data does not depend on the store: a user it cannot read is simply not ended.
            logger.warning("Looking up ended user %r in the history failed", user_id, exc_info=True)
    if ended is None:
        return None
    return UserLookup(user_id, board, ended.usage, ended, ended.sources)


@dataclass
class UserWindow:
    """One user's window on the detail page: its stats, and its flags now."""

    stats: WindowStats
    flags: list[Flag]


def user_window(found: UserLookup, *, window: str, now: datetime | None = None) -> UserWindow:
    """The user's stats over ``window`` and its flags (over the flag window) now; an ended user has no flags."""
    now = now or utcnow()
    length = window_length(window)
    stats = window_stats(window=length, user_ids=[found.user_id], now=now).get(found.user_id) or covered(length, now)
    if found.ended is not None:
        return UserWindow(stats, [])
    own = flag_stats([found.user_id], now=now, have=(window, {found.user_id: stats}))
    flags = users_flags(found.board, [found.user_id], now=now, stats=own)
    return UserWindow(stats, flags.get(found.user_id, []))
