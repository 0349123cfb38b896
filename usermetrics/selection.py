"""What a client looks at (sync, no Django): windows, sort keys, states, search, paging, summary.

One place decides what "page 2 of the active users sorted by errors, over the last 24 h" means:
``ViewSpec`` parses and normalizes the parameters (a query string or a websocket subscription
alike; anything invalid falls back to its default, never an error) and ``view_select`` applies
them to a ``Snapshot``. The list page, the feed and the exports all call it, so a page, its live
updates and its export always agree. The search rule (``matches``) serves ended users too.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from typing import Any

from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import Snapshot, SourceHealth, Totals, in_flight, is_active

# --- windows ---------------------------------------------------------------------------------------

# Every window name the dashboard knows, and how many points a chart of each gets.
WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
CHART_POINTS: dict[str, int] = {"5m": 60, "15m": 90, "1h": 120, "24h": 144, "7d": 168}
RATE_WINDOWS = ("5m", "1h", "24h")  # the list's rates
CHART_WINDOWS = ("15m", "1h", "24h", "7d")  # the detail page's and the overview's charts
DEFAULT_WINDOW = "1h"


def window_choose(name: Any, choices: Sequence[str] = tuple(WINDOWS), default: str = DEFAULT_WINDOW) -> str:
    """The window ``name`` names when it is one of ``choices``, else ``default``: the one rule for a bad window.

    Pages, the feed and the JSON API alike fall back and say which window they used.
    """
    text = str(name) if name is not None else ""
    return text if text in choices else default


def window_length(name: str) -> timedelta:
    """The length of a known window name (KeyError for an unknown one: choose it first)."""
    return WINDOWS[name]


def window_name(window: timedelta) -> str:
    """The name of a window length (``"90s"`` for a length that has none)."""
    for name, value in WINDOWS.items():
        if value == window:
            return name
    return f"{int(window.total_seconds())}s"


def chart_points(window: timedelta) -> int:
    """How many buckets a chart of ``window`` has."""
    return CHART_POINTS.get(window_name(window), 120)


# --- search ----------------------------------------------------------------------------------------

MAX_QUERY_LENGTH = 200


def search_needle(query: str) -> str:
    """The normalized form of a search (trimmed, case-folded); empty matches everyone."""
    return query.strip()[:MAX_QUERY_LENGTH].casefold()


def matches(needle: str, user_id: str, label: str | None) -> bool:
    """Whether a user's id or registered label contains ``needle`` (from ``search_needle``)."""
    return not needle or needle in user_id.casefold() or (label is not None and needle in label.casefold())


# --- sort keys and states --------------------------------------------------------------------------

# Sort keys are the seed's field names; each reads one value off a PerUserResourceUsage.
SORT_KEYS: dict[str, Callable[[PerUserResourceUsage], Any]] = {
    "user_id": lambda u: u.user_id,
    "created_at": lambda u: u.session.created_at,
    "last_activity": lambda u: u.session.last_activity,
    "ref_count": lambda u: u.session.ref_count,
    "is_active": is_active,
    "total_requests": lambda u: u.requests.total_requests,
    "active_requests": in_flight,
    "avg_latency_ms": lambda u: u.requests.avg_latency_ms,
    "error_count": lambda u: u.requests.error_count,
    "per_user_functions_count": lambda u: u.memory.per_user_functions_count,
    "per_user_function_groups_count": lambda u: u.memory.per_user_function_groups_count,
    "exit_stack_size": lambda u: u.memory.exit_stack_size,
}
DEFAULT_SORT = "-last_activity"

STATES: dict[str, Callable[[PerUserResourceUsage], bool]] = {
    "active": is_active,
    "idle": lambda u: not is_active(u),
    "errors": lambda u: u.requests.error_count > 0,
}
# States that are lifecycle flags (usermetrics.history.flags): the caller passes the flags.
FLAG_STATES = ("stuck", "rising", "erroring")
# Users that left: not in any snapshot, read from the history store by the caller.
ENDED = "ended"
ALL_STATES = (*STATES, *FLAG_STATES, ENDED)

PAGE_SIZES = (25, 50, 100, 250, 500)
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = PAGE_SIZES[-1]


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


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
        """Normalize untrusted parameters; anything invalid falls back to its default, never an error."""
        sort = str(params.get("sort") or DEFAULT_SORT)
        if sort.lstrip("-") not in SORT_KEYS:
            sort = DEFAULT_SORT
        state = str(params.get("state") or "")
        if state not in ALL_STATES:
            state = ""
        return cls(
            page=max(1, _int(params.get("page"), 1)),
            page_size=min(MAX_PAGE_SIZE, max(1, _int(params.get("page_size"), DEFAULT_PAGE_SIZE))),
            sort=sort,
            q=str(params.get("q") or "").strip()[:MAX_QUERY_LENGTH],
            state=state,
            window=window_choose(params.get("window"), RATE_WINDOWS),
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


# Per-snapshot results shared by every view and request of that instant (orderings, summary);
# they go away with the snapshot. Views run in worker threads, the feed on the event loop.
_memo: weakref.WeakKeyDictionary[Snapshot, dict[Any, Any]] = weakref.WeakKeyDictionary()
_memo_lock = threading.Lock()


def _memoized(snapshot: Snapshot, key: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per snapshot and key (two threads may both compute it; one result wins)."""
    with _memo_lock:
        entry = _memo.setdefault(snapshot, {})
        if key in entry:
            return entry[key]
    value = compute()
    with _memo_lock:
        return entry.setdefault(key, value)


def order_by(items: Iterable[Any], sort: str, key_of: Callable[[str], Callable[[Any], Any]]) -> list[Any]:
    """``items`` in the order of ``sort`` (a field name, ``-`` first for descending); ties by user id.

    ``key_of(field)`` gives the key function of a field for these items (live or ended users).
    Two stable sorts: ties keep user-id order whichever way the main key goes.
    """
    descending = sort.startswith("-")
    field_name = sort.lstrip("-")
    ordered = sorted(items, key=key_of("user_id"))
    if field_name != "user_id" or descending:
        ordered.sort(key=key_of(field_name), reverse=descending)
    return ordered


def view_filter(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> list[PerUserResourceUsage]:
    """Every user of the snapshot that ``spec`` matches, in its order (no paging: exports stream them all).

    The search matches the user id or its registered label (``labels``: user id -> label). A flag
    state keeps the users whose ``flags`` (user id -> flag names) include it; ``ended`` users are
    not in a snapshot, so that state matches nobody here (callers read them from the history).
    """
    users = _memoized(snapshot, ("sorted", spec.sort), lambda: order_by(snapshot.users, spec.sort, SORT_KEYS.get))
    if spec.state in STATES:
        keep = STATES[spec.state]
        users = [u for u in users if keep(u)]
    elif spec.state in FLAG_STATES:
        named = flags or {}
        users = [u for u in users if spec.state in named.get(u.user_id, ())]
    elif spec.state == ENDED:
        users = []
    needle = search_needle(spec.q)
    if needle:
        names = labels or {}
        users = [u for u in users if matches(needle, u.user_id, names.get(u.user_id))]
    return users


def view_select(
    snapshot: Snapshot,
    spec: ViewSpec,
    *,
    labels: Mapping[str, str] | None = None,
    flags: Mapping[str, Iterable[str]] | None = None,
) -> ViewResult:
    """Filter, search, sort and page the snapshot's users as ``spec`` says; the page is clamped to the last.

    Each ordering is computed once per snapshot, so views that differ only in page, search or
    filter cost one pass over the users each. See ``view_filter`` for ``labels`` and ``flags``.
    """
    return page_of(view_filter(snapshot, spec, labels=labels, flags=flags), spec)


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


def summary_get(snapshot: Snapshot) -> Summary:
    """The summary cards of ``snapshot`` (once per snapshot)."""
    return _memoized(snapshot, "summary", lambda: Summary(snapshot.totals, sources_brief(snapshot.sources)))


def sources_brief(sources: Iterable[SourceHealth]) -> list[dict[str, Any]]:
    """What pages and frames show of each source."""
    return [h.brief() for h in sources]
