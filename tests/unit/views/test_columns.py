"""The list's columns, owned by the view: sort headers and page links keep the rest of the view."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from tests.support.machine import ROOT
from usermetrics.selection import ViewResult, ViewSpec
from usermetrics.views.columns import (
    COLUMNS,
    WINDOW_COLUMNS,
    column_choices,
    default_hidden,
    group_headers,
    page_links,
    sort_headers,
    view_link,
)


def test_columns_sort_headers_flip_the_current_sort_and_keep_the_view():
    spec = ViewSpec(sort="-total_requests", q="ada", page=3)
    headers = {h["field"]: h for h in sort_headers(spec)}
    assert headers["total_requests"]["order"] == "descending"
    assert parse_qs(headers["total_requests"]["url"][1:]) == {"sort": ["total_requests"], "q": ["ada"]}  # page 1 again
    assert parse_qs(headers["user_id"]["url"][1:])["sort"] == ["user_id"]  # names read best A to Z
    assert parse_qs(headers["error_count"]["url"][1:])["sort"] == ["-error_count"]  # numbers largest first
    assert headers["user_id"]["numeric"] is False and headers["error_count"]["numeric"] is True


def test_columns_page_links_show_the_ends_and_around_the_current_page():
    result = ViewResult(spec=ViewSpec(page=10, page_size=25), users=[], matched=500, pages=20)
    numbers = [link["number"] for link in page_links(result)]
    assert numbers == [1, 2, None, 8, 9, 10, 11, 12, None, 19, 20]
    assert next(link for link in page_links(result) if link["current"])["url"] == view_link(result.spec, page=10)
    assert page_links(ViewResult(spec=ViewSpec(), users=[], matched=3, pages=1)) == []


def test_columns_the_scripts_rows_have_the_views_columns_in_its_order():
    # rows.js builds the rows of live frames; a column the view added but the script missed would shift every cell.
    script = (ROOT / "static" / "usermetrics" / "js" / "rows.js").read_text()
    listed = re.search(r"export const COLUMNS = \[(.*?)\];", script, re.S).group(1)
    assert re.findall(r'"([a-z0-9_]+)"', listed) == [c.field for c in COLUMNS]
    window = re.search(r"export const WINDOW_FIELDS = \[(.*?)\];", script, re.S).group(1)
    assert ["w_" + f for f in re.findall(r'"([a-z0-9_]+)"', window)] == [c.field for c in WINDOW_COLUMNS if c.numeric]
    figures = re.search(r"export const FIGURES = \[(.*?)\];", script, re.S).group(1)
    assert set(re.findall(r'"([a-z0-9_]+)"', figures)) == {"queued", "p95_ms"} <= {c.field for c in COLUMNS}


def test_columns_the_companions_figures_sort_and_say_what_they_are():
    headers = {h["field"]: h for h in sort_headers(ViewSpec(sort="-p95_ms"))}
    assert headers["p95_ms"]["order"] == "descending" and "percentile" in headers["p95_ms"]["title"]
    assert parse_qs(headers["queued"]["url"][1:])["sort"] == ["-queued"] and "semaphore" in headers["queued"]["title"]
    # The lifetime p95 gives way to the window's when the history shows one; Queued always shows.
    assert "p95_ms" in default_hidden(history=True) and "p95_ms" not in default_hidden(history=False)
    assert "queued" not in default_hidden(history=True)
    choices = {c["field"]: c for c in column_choices(history=True)}
    assert choices["p95_ms"] == {"field": "p95_ms", "label": "Lifetime p95", "shown": False}
    assert choices["w_p95_ms"]["shown"] and choices["queued"]["shown"]
    assert dict((k, n) for k, _, n in group_headers(history=False))["requests"] == 5
    assert dict((k, n) for k, _, n in group_headers(history=True))["requests"] == 4
