"""Template tags of the dashboard pages (sync): times, numbers, names, and drawing the list's rows.

What the list shows (its columns, headers and page links) is the view's (``views.columns``), as the
admin's ChangeList owns its columns and ``admin_list`` only draws them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

from usermetrics import humanize
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.snapshot import is_active

register = template.Library()


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
def table_row(row: dict[str, Any], columns: Sequence[Any], window_columns: Sequence[Any]) -> SafeString:
    """One ``<tr>`` of the user table from the view's ready-made texts, in its columns' order (every value escaped).

    ``columns`` and ``window_columns`` are the view's (``views.columns``; the window's are empty with
    the history off). A hundred rows of twenty cells through the template engine were most of a list
    page's time. Each value goes through ``html.escape`` (quotes too), which is what Django's
    ``escape`` does, without its lazy-string machinery per call.
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
    rates = row["rates"] or {}
    for column in window_columns:
        field = column.field
        if column.numeric:  # the window's rates, keyed in ``humanize.rates_words`` by the name after "w_"
            title = rates.get(f"{field[2:]}_title")  # the tokens' split and the cost's unpriced tokens
            hover = f' title="{e(title)}"' if title else ""
            cells.append(f'<td class="um-num um-rate" data-field="{field}"{hover}>{e(rates.get(field[2:], ""))}</td>')
        else:
            spark = f'<span data-sparkline-user="{e(row["user_id"])}"></span>'
            cells.append(f'<td class="um-col-spark" data-field="{field}">{spark}</td>')
    for column in columns:
        key = column.field
        if key == "is_active":
            state = e(row["state"])
            cells.append(f'<td data-field="is_active"><span class="um-badge" data-state="{state}">{state}</span></td>')
        elif not column.numeric:  # a time
            t = row[key]
            cells.append(f'<td data-field="{key}" data-time="{e(t["iso"])}" title="{e(t["exact"])}">{e(t["ago"])}</td>')
        else:
            extra = " um-has-errors" if key == "error_count" and row["has_errors"] else ""
            extra += " um-has-queue" if key == "queued" and row.get("has_queue") else ""
            # A companion's figure says more on hover (``p95_ms``: p50, p95 and p99 together).
            title = row.get(f"{key}_title")
            hover = f' title="{e(title)}"' if title else ""
            cells.append(f'<td class="um-num{extra}" data-field="{key}"{hover}>{e(row[key])}</td>')
    return mark_safe(f'<tr data-user-id="{e(row["user_id"])}" class="{e(row["class"])}">{"".join(cells)}</tr>')


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)
