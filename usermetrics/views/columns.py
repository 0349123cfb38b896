"""The user list's columns and links (sync), owned by its view as the admin's ChangeList owns ``list_display``.

The view puts what this module works out into the page's context (the headers with their sort
links, the group headers, the column chooser's choices, the page links); the template tags only
draw it (``templatetags.usermetrics.table_row``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from usermetrics.selection import ViewResult, ViewSpec


@dataclass(frozen=True)
class Column:
    """One column of the user table: the field it shows (a seed field sorts by it), its group and header."""

    field: str
    label: str
    group: str
    numeric: bool = True
    title: str = ""  # the header's tooltip, where the label needs one
    sortable: bool = True  # a window column sorts only where the history can order every user by it


# The seed's fields, in the table's order, with the NAT companions' figures beside the seed field
# they sharpen ("—" for a user no companion reports; sorted by the board's extras columns).
COLUMNS = (
    Column("created_at", "Created", "session", numeric=False),
    Column("last_activity", "Last activity", "session", numeric=False),
    Column("ref_count", "Refs", "session"),
    Column("is_active", "State", "session", numeric=False),
    Column("total_requests", "Requests", "requests"),
    Column("active_requests", "In flight", "requests"),
    Column("queued", "Queued", "requests", title="Requests waiting on the user's semaphore now (NAT companion)"),
    Column("avg_latency_ms", "Avg latency", "requests"),
    Column(
        "p95_ms", "Lifetime p95", "requests", title="95th percentile latency of every request counted (NAT companion)"
    ),
    Column("error_count", "Errors", "requests"),
    Column("per_user_functions_count", "Functions", "memory"),
    Column("per_user_function_groups_count", "Groups", "memory"),
    Column("exit_stack_size", "Exit stack", "memory"),
)
GROUPS = (("session", "Session"), ("requests", "Requests"), ("memory", "Memory"))
# The window's columns (with the history on), between the user and the seed fields; the tokens and
# the cost sort (``services.spend`` orders every user by the history's sums), the rates do not.
WINDOW_COLUMNS = (
    Column("w_requests_per_min", "Req/min", "window", title="Requests per minute over the window", sortable=False),
    Column("w_error_rate", "Error rate", "window", title="Failed share of the window's requests", sortable=False),
    Column("w_latency_ms", "Latency", "window", title="Mean latency of the window's requests", sortable=False),
    # From the NAT companions' histograms (``history.latency``): empty for users no companion reports.
    Column(
        "w_p95_ms",
        "p95",
        "window",
        title="95th percentile latency of the window's requests (NAT companions)",
        sortable=False,
    ),
    # From the tokens the companions counted, priced when used (``history.tokens``).
    Column("w_tokens", "Tokens", "window", title="LLM tokens used over the window (NAT companions)"),
    Column("w_cost", "Cost", "window", title="What the window's LLM tokens cost, at the prices in force when used"),
    Column("w_activity", "Activity", "window", numeric=False, sortable=False),
)
# Hidden until the column chooser shows them, so the table fits 1,366 px (the chooser remembers).
# The lifetime mean latency gives way to the window's (the "Latency" of the window group).
DEFAULT_HIDDEN = (
    "created_at",
    "ref_count",
    "avg_latency_ms",
    "per_user_functions_count",
    "per_user_function_groups_count",
)
# With the history on, the lifetime p95 gives way to the window's too (the "p95" of the window
# group): the one an operator acts on, and the room it takes keeps the table within 1,366 px.
# Without the history it is the only percentile shown. The window's tokens wait in the chooser
# too: the cost is the question asked first, and its cell says the tokens on hover.
HIDDEN_WITH_HISTORY = ("p95_ms", "w_tokens")


def default_hidden(*, history: bool) -> tuple[str, ...]:
    """The columns hidden until the chooser shows them (``history``: the window's columns are shown)."""
    return DEFAULT_HIDDEN + (HIDDEN_WITH_HISTORY if history else ())


def view_link(spec: ViewSpec, **changes: Any) -> str:
    """``?query`` of ``spec`` with ``changes``; the default view is the bare ``?``."""
    return "?" + urlencode(spec.as_params(**changes))


def sort_headers(spec: ViewSpec, columns: tuple[Column, ...] = COLUMNS) -> list[dict[str, Any]]:
    """The headers: user id first, then ``columns`` (the seed's), each sortable one with the link that sorts by it."""
    current = spec.sort.lstrip("-")
    descending = spec.sort.startswith("-")
    headers = []
    for column in (Column("user_id", "User", "", numeric=False), *columns):
        field = column.field
        if field == current:
            next_sort = field if descending else f"-{field}"
            order = "descending" if descending else "ascending"
        else:
            # Numbers and times read best largest/newest first; names alphabetically.
            next_sort = field if field == "user_id" else f"-{field}"
            order = ""
        headers.append(
            {
                "field": field,
                "label": column.label,
                "numeric": column.numeric,
                "group": column.group,
                "title": column.title,
                "order": order if column.sortable else "",
                "url": view_link(spec, sort=next_sort, page=1) if column.sortable else None,
            }
        )
    return headers


def window_headers(spec: ViewSpec) -> list[dict[str, Any]]:
    """The window columns' headers (the history on): the tokens' and the cost's with their sort links."""
    return sort_headers(spec, WINDOW_COLUMNS)[1:]


def page_links(result: ViewResult) -> list[dict[str, Any]]:
    """Page numbers around the current page and at both ends, with gaps as ``None`` urls ([] for one page)."""
    spec, pages = result.spec, result.pages
    if pages <= 1:
        return []
    wanted = {1, 2, pages - 1, pages, *range(spec.page - 2, spec.page + 3)}
    links: list[dict[str, Any]] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if number - previous > 1:
            links.append({"number": None, "url": None, "current": False})
        links.append({"number": number, "url": view_link(spec, page=number), "current": number == spec.page})
        previous = number
    return links


def window_span(*, history: bool) -> int:
    """How many window columns are shown by default (the window group's span; columns.js recounts after a choice)."""
    hidden = default_hidden(history=history)
    return sum(c.field not in hidden for c in WINDOW_COLUMNS) if history else 0


def group_headers(*, history: bool) -> list[tuple[str, str, int]]:
    """Each seed group's key, label and span over the columns shown by default (columns.js recounts after a choice)."""
    hidden = default_hidden(history=history)
    return [(key, label, sum(c.field not in hidden for c in COLUMNS if c.group == key)) for key, label in GROUPS]


def column_choices(*, history: bool) -> list[dict[str, Any]]:
    """The column chooser's entries: the window's columns (with the history on), then the seed's."""
    hidden = default_hidden(history=history)
    return [
        {"field": c.field, "label": c.label, "shown": c.field not in hidden}
        for c in (*(WINDOW_COLUMNS if history else ()), *COLUMNS)
    ]
