"""Template tags of the dashboard pages (sync): times, names, and the list's headers and pages, as admin_list does."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django import template
from django.utils.safestring import SafeString, mark_safe

from usermetrics import humanize
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.selection import ViewResult, ViewSpec
from usermetrics.snapshot import is_active

register = template.Library()


@dataclass(frozen=True)
class Column:
    """One column of the user table: the seed field it shows and sorts by."""

    field: str
    label: str
    group: str
    numeric: bool = True


COLUMNS = (
    Column("created_at", "Created", "session", numeric=False),
    Column("last_activity", "Last activity", "session", numeric=False),
    Column("ref_count", "Refs", "session"),
    Column("is_active", "State", "session", numeric=False),
    Column("total_requests", "Requests", "requests"),
    Column("active_requests", "In flight", "requests"),
    Column("avg_latency_ms", "Avg latency", "requests"),
    Column("error_count", "Errors", "requests"),
    Column("per_user_functions_count", "Functions", "memory"),
    Column("per_user_function_groups_count", "Groups", "memory"),
    Column("exit_stack_size", "Exit stack", "memory"),
)
GROUPS = (("session", "Session", 4), ("requests", "Requests", 4), ("memory", "Memory", 3))
# The window's columns (with the history on), between the user and the seed fields.
WINDOW_COLUMNS = (
    Column("w_requests_per_min", "Req/min", "window"),
    Column("w_error_rate", "Error rate", "window"),
    Column("w_latency_ms", "Latency", "window"),
    Column("w_activity", "Activity", "window", numeric=False),
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


@register.filter
def ago(value: datetime, now: datetime) -> str:
    """``{{ when|ago:now }}`` -> '3 min ago'."""
    return humanize.ago(value, now)


@register.filter
def utc(value: datetime) -> str:
    """The exact time in UTC, to the millisecond: '2026-11-25 15:00:00.123 UTC'."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


@register.filter
def iso(value: datetime) -> str:
    """ISO 8601 in UTC, for the page's JavaScript to keep relative times current."""
    return value.astimezone(UTC).isoformat()


@register.filter
def big(value: float) -> str:
    """``{{ n|big }}`` -> '12,345', '1.2M' (``humanize.big_number``; the exact value goes in a title)."""
    return humanize.big_number(value)


@register.filter
def latency_fit(value: float) -> str:
    """``{{ ms|latency_fit }}`` -> '206.99 ms', '1.61 s' (``humanize.latency_fit``)."""
    return humanize.latency_fit(value)


@register.filter
def display(user_id: str, labels: dict[str, str]) -> str:
    """``{{ user_id|display:labels }}`` -> 'Ada Lovelace (3f2a...)' for a named user, else the id."""
    return humanize.user_display(user_id, labels or {})


@register.filter
def active(usage: PerUserResourceUsage) -> bool:
    """``{% if usage|active %}``: the one rule of "active" (``snapshot.is_active``)."""
    return is_active(usage)


@register.simple_tag
def view_link(spec: ViewSpec, **changes: Any) -> str:
    """``?query`` of ``spec`` with ``changes``; the default view is the bare ``?``."""
    return "?" + urlencode(spec.as_params(**changes))


@register.simple_tag
def sort_headers(spec: ViewSpec) -> list[dict[str, Any]]:
    """The sortable headers: user id first, then every seed field, each with the link that sorts by it."""
    current = spec.sort.lstrip("-")
    descending = spec.sort.startswith("-")
    headers = []
    for field, label, numeric, group in [
        ("user_id", "User", False, ""),
        *((c.field, c.label, c.numeric, c.group) for c in COLUMNS),
    ]:
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
                "label": label,
                "numeric": numeric,
                "group": group,
                "order": order,
                "url": view_link(spec, sort=next_sort, page=1),
            }
        )
    return headers


@register.simple_tag
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


_NUMBERS = (
    "ref_count", "total_requests", "active_requests", "avg_latency_ms", "error_count",
    "per_user_functions_count", "per_user_function_groups_count", "exit_stack_size",
)  # fmt: skip


@register.simple_tag
def table_row(row: dict[str, Any], history: bool) -> SafeString:
    """One ``<tr>`` of the user table from the view's ready-made texts (every value escaped here).

    A hundred rows of twenty cells through the template engine were most of a list page's time.
    Each value goes through ``html.escape`` (quotes too), which is what Django's ``escape`` does,
    without its lazy-string machinery per call.
    """
    e = _escape
    flags = "".join(
        f'<span class="um-flag" data-flag="{e(f.name)}" title="{e(f.detail)}">{e(f.label)}</span>' for f in row["flags"]
    )
    ended = row["ended"]
    ago = f' <span class="um-ended-ago" title="{e(ended["exact"])}">{e(ended["ago"])}</span>' if ended else ""
    cells = [
        f'<th scope="row" class="um-col-user" data-field="user_id">'
        f'<a href="{e(row["href"])}" title="{e(row["display"])}">{e(row["display"])}</a>'
        f'<span class="um-row-flags" data-row-flags>{flags}</span>{ago}</th>'
    ]
    if history:
        rates = row["rates"] or {"requests_per_min": "", "error_rate": "", "latency_ms": ""}
        for key in ("requests_per_min", "error_rate", "latency_ms"):
            cells.append(f'<td class="um-num um-rate" data-field="w_{key}">{e(rates[key])}</td>')
        spark = f'<span data-sparkline-user="{e(row["user_id"])}"></span>'
        cells.append(f'<td class="um-col-spark" data-field="w_activity">{spark}</td>')
    for key in ("created_at", "last_activity"):
        t = row[key]
        cells.append(f'<td data-field="{key}" data-time="{e(t["iso"])}" title="{e(t["exact"])}">{e(t["ago"])}</td>')
    for key in _NUMBERS:
        if key == "total_requests":  # the state badge sits between the session's counts and the requests'
            state = e(row["state"])
            cells.append(f'<td data-field="is_active"><span class="um-badge" data-state="{state}">{state}</span></td>')
        extra = " um-has-errors" if key == "error_count" and row["has_errors"] else ""
        cells.append(f'<td class="um-num{extra}" data-field="{key}">{e(row[key])}</td>')
    return mark_safe(f'<tr data-user-id="{e(row["user_id"])}" class="{e(row["class"])}">{"".join(cells)}</tr>')


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)
