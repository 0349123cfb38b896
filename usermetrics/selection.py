"""What a client looks at (sync, no Django): sort keys, states, search, paging, summary (windows: ``windows``).

One place decides what "page 2 of the active users sorted by errors, over the last 24 h" means:
``ViewSpec`` parses and normalizes the parameters (a query string or a websocket subscription
alike; anything invalid falls back to its default, never an error) and ``view_select`` applies
them to a published ``Board``. The list page, the feed and the exports all call it, so a page,
its live updates and its export always agree. The search rule (``matches``) serves ended users too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from usermetrics.board import COLUMNS, EXTRAS_COLUMNS, Board
from usermetrics.snapshot import SourceHealth, Totals
from usermetrics.windows import DEFAULT_WINDOW, RATE_WINDOWS, window_choose

# --- search ----------------------------------------------------------------------------------------

MAX_QUERY_LENGTH = 200


def search_needle(query: str) -> str:
    """A search as it is compared (case-folded; ``ViewSpec`` trimmed and bounded it); empty matches everyone."""
    return query.strip().casefold()


def matches(needle: str, user_id: str, label: str | None) -> bool:
    """Whether a user's id or registered label contains ``needle`` (from ``search_needle``)."""
    return matches_folded(needle, user_id.casefold(), label.casefold() if label else None)


def matches_folded(needle: str, folded_id: str, folded_label: str | None) -> bool:
    """``matches`` on an id and label already case-folded (a board folds its ids once)."""
    return not needle or needle in folded_id or (folded_label is not None and needle in folded_label)


# --- sort keys and states --------------------------------------------------------------------------

# Sort keys are the seed's field names (the user id, or a board column, board.COLUMNS) and the
# companions' extras columns (board.EXTRAS_COLUMNS); the ended users' list sorts by the same keys
# in the database (history.ended). The window's tokens and cost are sort keys too, but no board
# holds them: the list page orders by them from the history (``services.spend``), and here they
# leave the user-id order.
WINDOW_SORT_KEYS: tuple[str, ...] = ("w_tokens", "w_cost")
SORT_KEYS: tuple[str, ...] = ("user_id", *COLUMNS, *EXTRAS_COLUMNS, *WINDOW_SORT_KEYS)
DEFAULT_SORT = "-last_activity"


# States read off the board's columns (built with snapshot.is_active and the record's counts).
STATES: dict[str, Callable[[Board], Callable[[int], bool]]] = {
    "active": lambda b: b.columns["is_active"].__getitem__,
    "idle": lambda b: lambda i: not b.columns["is_active"][i],
    "errors": lambda b: lambda i: b.columns["error_count"][i] > 0,
    # Requests wait on the user's semaphore now (a NAT companion's figure, ``Extras.saturated``).
    "saturated": lambda b: lambda i: b.columns["queued"][i] > 0,
}
# States that are lifecycle flags (usermetrics.history.flags), as the producer published them.
FLAG_STATES = ("stuck", "rising", "erroring")
# Users that left: not on any board, read from the history store by the caller.
ENDED = "ended"
ALL_STATES = (*STATES, *FLAG_STATES, ENDED)

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = PAGE_SIZES[-1]
MAX_PAGE = 10**9  # far past any board's last page; keeps a 4,000-digit page number out of keys and links


def _int(value: Any, default: int) -> int:
    """``value`` as an int, or ``default``: NaN is a ValueError, infinity (``1e400`` too) an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default  # a list or a dict of any depth is not a number (and is never walked)
    try:
        return int(value)
    except (ValueError, OverflowError):
        return default


def _text(value: Any) -> str:
    """``value`` when it is a string, else empty: only strings name a sort, a state, a window or a search."""
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class ViewSpec:
    """What a client looks at: a page of the users, sorted, searched and filtered, with a rate window."""

    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort: str = DEFAULT_SORT
    q: str = ""
    state: str = ""
    window: str = DEFAULT_WINDOW

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ViewSpec:
        """Normalize untrusted parameters; anything invalid falls back to its default, never an error.

        ``params`` may be anything a client sent (a query string's dict, a decoded JSON value of
        any shape): a value of the wrong type is its default, and nothing here raises.
        """
        if not isinstance(params, Mapping):
            return cls()
        sort = _text(params.get("sort")) or DEFAULT_SORT
        if sort.lstrip("-") not in SORT_KEYS:
            sort = DEFAULT_SORT
        state = _text(params.get("state"))
        if state not in ALL_STATES:
            state = ""
        return cls(
            # A page past the end is clamped to the last by page_of; a huge one is bounded here first.
            page=min(MAX_PAGE, max(1, _int(params.get("page"), 1))),
            page_size=min(MAX_PAGE_SIZE, max(1, _int(params.get("page_size"), DEFAULT_PAGE_SIZE))),
            sort=sort,
            q=_text(params.get("q")).strip()[:MAX_QUERY_LENGTH],
            state=state,
            window=window_choose(_text(params.get("window")), RATE_WINDOWS),
        )

    def as_params(self, **changes: Any) -> dict[str, str]:
        """Query parameters for this view with ``changes``, leaving out the defaults (for links)."""
        values = {**asdict(self), **changes}
        defaults = asdict(ViewSpec())
        return {k: str(v) for k, v in values.items() if v != defaults[k]}

    @property
    def key(self) -> str:
        """A stable identity of the view."""
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ViewResult:
    """One page of a view: its users and where it sits among the matching users."""

    spec: ViewSpec
    users: list[Any]
    matched: int
    pages: int
    # The page size asked for, when the frame budget forced a smaller one (None: not clamped).
    requested_page_size: int | None = None

    def meta(self) -> dict[str, Any]:
        """The ``view`` metadata of a frame (and of the page's script)."""
        return {
            "kind": "list",
            **asdict(self.spec),
            "pages": self.pages,
            "matched": self.matched,
            "clamped": self.requested_page_size is not None,
            "requested_page_size": self.requested_page_size or self.spec.page_size,
        }


_memo_lock = threading.Lock()


def memoized(board: Board, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per board and key (two threads may both compute it; one result wins).

    Orderings and the search text are shared by every view and request of one refresh, and go
    away with the board. Views run in worker threads, the feed on an event loop.
    """
    with _memo_lock:
        if key in board.memo:
            return board.memo[key]
    value = compute()
    with _memo_lock:
        return board.memo.setdefault(key, value)


def order_by(items: Iterable[Any], sort: str, key_of: Callable[[str], Callable[[Any], Any]]) -> list[Any]:
    """``items`` in the order of ``sort`` (a field name, ``-`` first for descending); ties by user id.

    ``key_of(field)`` gives the key function of a field for these items (board positions or
    records). Two stable sorts: ties keep user-id order whichever way the main key goes.
    """
    descending = sort.startswith("-")
    field_name = sort.lstrip("-")
    ordered = sorted(items, key=key_of("user_id"))
    if field_name != "user_id" or descending:
        ordered.sort(key=key_of(field_name), reverse=descending)
    return ordered


def board_order(board: Board, sort: str) -> list[int]:
    """The board's user positions in the order of ``sort`` (once per board and sort key), as ``order_by`` orders.

    The user-id order is sorted once and reused by every other key (a board of the same users as
    the one before carries it over: ``Board.ID_ORDER``).
    """

    def by_id() -> list[int]:
        return sorted(range(len(board)), key=board.ids.__getitem__)

    def ordered() -> list[int]:
        positions = memoized(board, Board.ID_ORDER, by_id)
        descending = sort.startswith("-")
        name = sort.lstrip("-")
        if (name == "user_id" and not descending) or name in WINDOW_SORT_KEYS:
            return positions
        key = board.ids.__getitem__ if name == "user_id" else board.columns[name].__getitem__
        return sorted(positions, key=key, reverse=descending)  # stable: ties stay in user-id order

    return memoized(board, ("order", sort), ordered)


def _folded(board: Board) -> list[str]:
    return memoized(board, Board.FOLDED_IDS, lambda: [uid.casefold() for uid in board.ids])


def view_filter(board: Board, spec: ViewSpec, *, labels: Mapping[str, str] | None = None) -> list[int]:
    """The positions of every board user that ``spec`` matches, in its order (no paging: exports take all).

    The search matches the user id or its registered label (``labels``: user id -> label); a flag
    state keeps the users the producer published with that flag; ``ended`` users are not on a
    board, so that state matches nobody here (callers read them from the history).
    """
    positions = board_order(board, spec.sort)
    if spec.state in STATES:
        keep = STATES[spec.state](board)
        positions = [i for i in positions if keep(i)]
    elif spec.state in FLAG_STATES:
        bit = 1 << board.flag_names.index(spec.state) if spec.state in board.flag_names else 0
        flags = board.columns["flags"]
        positions = [i for i in positions if flags[i] & bit]
    elif spec.state == ENDED:
        positions = []
    needle = search_needle(spec.q)
    if needle:
        folded, ids = _folded(board), board.ids
        labels_folded = {uid: label.casefold() for uid, label in (labels or {}).items()}
        positions = [i for i in positions if matches_folded(needle, folded[i], labels_folded.get(ids[i]))]
    return positions


def view_select(board: Board, spec: ViewSpec, *, labels: Mapping[str, str] | None = None) -> ViewResult:
    """Filter, search, sort and page the board's users as ``spec`` says; the page is clamped to the last.

    ``ViewResult.users`` holds board positions; each ordering is computed once per board, so views
    that differ only in page, search or filter cost one pass over the users each.
    """
    return page_of(view_filter(board, spec, labels=labels), spec)


def page_of(users: Sequence[Any], spec: ViewSpec) -> ViewResult:
    """The page of ``users`` (already filtered and ordered) that ``spec`` asks for, clamped to the last."""
    matched = len(users)
    pages = max(1, -(-matched // spec.page_size))
    page = min(spec.page, pages)
    if page != spec.page:
        spec = replace(spec, page=page)
    start = (page - 1) * spec.page_size
    return ViewResult(spec=spec, users=list(users[start : start + spec.page_size]), matched=matched, pages=pages)


# --- summary ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The summary cards: the snapshot's totals, and its sources' health."""

    totals: Totals
    sources: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """The totals the cards show, JSON-ready (the sources travel as a frame's own ``sources`` key)."""
        t = self.totals
        return {
            "users": t.users,
            "active": t.active,
            "in_flight": t.in_flight,
            "requests": t.requests,
            "errors": t.errors,
            "avg_latency_ms": t.avg_latency_ms,
        }


def summary_get(board: Board) -> Summary:
    """The summary cards of ``board``."""
    return Summary(board.totals, sources_brief(board.sources))


def sources_brief(sources: Iterable[SourceHealth]) -> list[dict[str, Any]]:
    """What pages and frames show of each source."""
    return [h.brief() for h in sources]
