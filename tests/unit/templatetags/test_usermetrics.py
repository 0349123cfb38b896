"""The pages' template tags, and the list's columns they draw: sort headers and page links keep the rest of the view."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs

from usermetrics.history.flags import Flag
from usermetrics.selection import ViewResult, ViewSpec
from usermetrics.templatetags.usermetrics import table_row, utc
from usermetrics.views.columns import COLUMNS, WINDOW_COLUMNS, page_links, sort_headers, view_link


def test_templatetags_sort_headers_flip_the_current_sort_and_keep_the_view():
    spec = ViewSpec(sort="-total_requests", q="ada", page=3)
    headers = {h["field"]: h for h in sort_headers(spec)}
    assert headers["total_requests"]["order"] == "descending"
    assert parse_qs(headers["total_requests"]["url"][1:]) == {"sort": ["total_requests"], "q": ["ada"]}  # page 1 again
    assert parse_qs(headers["user_id"]["url"][1:])["sort"] == ["user_id"]  # names read best A to Z
    assert parse_qs(headers["error_count"]["url"][1:])["sort"] == ["-error_count"]  # numbers largest first
    assert headers["user_id"]["numeric"] is False and headers["error_count"]["numeric"] is True


def test_templatetags_page_links_show_the_ends_and_around_the_current_page():
    result = ViewResult(spec=ViewSpec(page=10, page_size=25), users=[], matched=500, pages=20)
    numbers = [link["number"] for link in page_links(result)]
    assert numbers == [1, 2, None, 8, 9, 10, 11, 12, None, 19, 20]
    assert next(link for link in page_links(result) if link["current"])["url"] == view_link(result.spec, page=10)
    assert page_links(ViewResult(spec=ViewSpec(), users=[], matched=3, pages=1)) == []


def test_templatetags_exact_times_are_utc():
    assert utc(datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=UTC)) == "2026-11-25 15:00:00.123 UTC"


def test_templatetags_table_row_escapes_every_value():
    hostile = '<img src=x onerror=alert(1)>"'
    cell = {"iso": hostile, "exact": hostile, "ago": hostile}
    row = {
        "user_id": hostile, "href": "/users/x/", "display": hostile, "class": "", "state": "idle", "ended": None,
        "flags": [Flag("stuck", hostile, hostile)],
        "rates": {"requests_per_min": hostile, "error_rate": "", "latency_ms": ""},
        "created_at": cell, "last_activity": cell, "has_errors": False,
        **{key: hostile for key in ("ref_count", "total_requests", "active_requests", "avg_latency_ms", "error_count",
                                    "per_user_functions_count", "per_user_function_groups_count", "exit_stack_size")},
    }  # fmt: skip
    html = table_row(row, COLUMNS, WINDOW_COLUMNS)
    assert "<img" not in html and '"<' not in html
    # id, display and its title, two flag texts, one rate, the sparkline's id, two times x three, eight numbers
    assert html.count("&lt;img src=x onerror=alert(1)&gt;&quot;") == 21


def test_templatetags_table_row_cells_follow_the_views_columns():
    cell = {"iso": "t", "exact": "t", "ago": "t"}
    row = {
        "user_id": "u", "href": "/users/u/", "display": "u", "class": "", "state": "idle", "ended": None,
        "flags": [], "rates": {"requests_per_min": "1", "error_rate": "0%", "latency_ms": "2 ms"},
        "created_at": cell, "last_activity": cell, "has_errors": False,
        **{c.field: "0" for c in COLUMNS if c.numeric},
    }  # fmt: skip
    fields = ["user_id", *(c.field for c in (*WINDOW_COLUMNS, *COLUMNS))]
    html = table_row(row, COLUMNS, WINDOW_COLUMNS)
    assert [html.index(f'data-field="{f}"') for f in fields] == sorted(html.index(f'data-field="{f}"') for f in fields)
    assert "w_activity" not in table_row(row, COLUMNS, ())  # the history off: no window cells
