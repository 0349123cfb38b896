"""The pages' template tags: exact times in UTC, table rows escaped and drawn in the view's columns."""

from __future__ import annotations

from datetime import UTC, datetime

from usermetrics.history.flags import Flag
from usermetrics.templatetags.usermetrics import table_row, utc
from usermetrics.views.columns import COLUMNS, WINDOW_COLUMNS


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
                                    "per_user_functions_count", "per_user_function_groups_count", "exit_stack_size",
                                    "queued", "p95_ms", "p95_ms_title")},
    }  # fmt: skip
    html = table_row(row, COLUMNS, WINDOW_COLUMNS)
    assert "<img" not in html and '"<' not in html
    # id, display and its title, two flag texts, one rate, the sparkline's id, two times x three, ten numbers and
    # the p95's title
    assert html.count("&lt;img src=x onerror=alert(1)&gt;&quot;") == 24


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
