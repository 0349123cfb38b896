"""Selection: parameters normalized, the search rule, sorting with ties, paging, summary."""

from __future__ import annotations

import pytest

from tests.support.factories import board_of, extras_of, record, sample_users
from usermetrics.selection import DEFAULT_SORT, ViewSpec, matches, search_needle, summary_get, view_filter, view_select


def snap(users, flags=None):
    return board_of(users, flags=flags)


def ids(board, positions):
    return [board.ids[i] for i in positions]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ViewSpec()),
        (
            {"page": "0", "page_size": "9999", "sort": "-nope", "state": "bogus", "window": "2y"},
            ViewSpec(page_size=500),
        ),
        ({"page": "x", "page_size": "-3"}, ViewSpec(page_size=1)),
        (
            {"q": "  ada  ", "state": "ended", "sort": "user_id", "window": "24h"},
            ViewSpec(q="ada", state="ended", sort="user_id", window="24h"),
        ),
        ({"q": "x" * 500}, ViewSpec(q="x" * 200)),
    ],
)
def test_selection_viewspec_normalizes_untrusted_parameters(params, expected):
    assert ViewSpec.from_params(params) == expected


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "params",
    [
        {"page": float("nan"), "page_size": float("inf")},
        {"page": float("-inf"), "page_size": float("nan")},
        {"page": 1e308, "page_size": -1e308},
        {"page": 10**5000, "page_size": "9" * 5000},
        {"page": _nested(5000), "sort": _nested(5000), "q": _nested(5000), "state": {}, "window": {"a": 1}},
        {"page": True, "sort": 7, "q": 1.5, "state": None, "window": 24},
        {"page": object(), "q": b"bytes", "sort": ["user_id"]},
        [],
        "page=2",
        None,
        _nested(5000),
    ],
)
def test_selection_viewspec_never_raises_on_hostile_input(params):
    spec = ViewSpec.from_params(params)  # type: ignore[arg-type]
    assert 1 <= spec.page <= 10**9 and 1 <= spec.page_size <= 500
    assert spec.sort == DEFAULT_SORT and spec.q == "" and spec.state == "" and spec.window == "1h"
    assert spec.key and spec.as_params(page=2)  # a usable identity and links


def test_selection_viewspec_links_leave_out_the_defaults():
    spec = ViewSpec(page=2, sort="user_id")
    assert spec.as_params() == {"page": "2", "sort": "user_id"}
    assert spec.as_params(page=1, sort=DEFAULT_SORT) == {}
    assert ViewSpec().key != spec.key


def test_selection_search_rule():
    needle = search_needle("  ÄDA ")
    assert matches(needle, "äda@example.com", None)
    assert matches(search_needle("turing"), "id-2", "Alan Turing")
    assert not matches(search_needle("turing"), "id-3", None)
    assert matches(search_needle(" "), "anyone", None)  # an empty search matches everyone


def test_selection_sort_filter_search_and_page():
    users = sample_users()  # u00..u11: every third active, every fourth with errors
    snapshot = snap(users)
    by_requests = view_select(snapshot, ViewSpec(sort="-total_requests", page_size=5))
    assert ids(snapshot, by_requests.users) == ["u11", "u10", "u09", "u08", "u07"]
    assert (by_requests.matched, by_requests.pages) == (12, 3)
    active = view_filter(snapshot, ViewSpec(state="active", sort="user_id"))
    assert ids(snapshot, active) == ["u00", "u03", "u06", "u09"]
    errors = view_filter(snapshot, ViewSpec(state="errors", sort="user_id"))
    assert ids(snapshot, errors) == ["u04", "u08"]  # u00 has 0 errors
    named = view_filter(snapshot, ViewSpec(q="ADA"), labels={"u05": "Ada"})
    assert ids(snapshot, named) == ["u05"]
    past_the_end = view_select(snapshot, ViewSpec(page=9, page_size=5))
    assert past_the_end.spec.page == 3 and len(past_the_end.users) == 2
    flagged_board = snap(sample_users(), flags={"u01": ["stuck"], "u02": ["erroring"]})
    assert ids(flagged_board, view_filter(flagged_board, ViewSpec(state="stuck"))) == ["u01"]
    assert view_filter(snapshot, ViewSpec(state="ended")) == []  # ended users come from the history


def test_selection_ties_keep_user_id_order_both_ways():
    users = [record(uid, requests={"total_requests": 5}) for uid in ("c", "a", "b")]
    snapshot = snap(users)
    assert ids(snapshot, view_filter(snapshot, ViewSpec(sort="total_requests"))) == ["a", "b", "c"]
    assert ids(snapshot, view_filter(snapshot, ViewSpec(sort="-total_requests"))) == ["a", "b", "c"]
    assert ids(snapshot, view_filter(snapshot, ViewSpec(sort="-user_id"))) == ["c", "b", "a"]


def test_selection_active_state_uses_the_ref_count_rule():
    liar = record("liar", session={"ref_count": 0, "is_active": True})
    snapshot = snap([liar])
    assert view_filter(snapshot, ViewSpec(state="active")) == []
    assert ids(snapshot, view_filter(snapshot, ViewSpec(state="idle"))) == ["liar"]


def test_selection_saturated_state_keeps_users_with_a_queue_and_sorts_by_the_figures():
    board = board_of(
        [record("a"), record("b"), record("c"), record("d")],
        extras={"a": extras_of([5.0], queued=0), "b": extras_of([500.0], queued=3), "c": extras_of([50.0], queued=1)},
    )
    assert ids(board, view_filter(board, ViewSpec(state="saturated", sort="user_id"))) == ["b", "c"]  # not d: none
    assert ViewSpec.from_params({"state": "saturated"}).state == "saturated"
    # No companion (d) sorts below every figure, as an unknown percentile (-1) does.
    assert ids(board, view_filter(board, ViewSpec(sort="-p95_ms"))) == ["b", "c", "a", "d"]
    assert ids(board, view_filter(board, ViewSpec(sort="-queued")))[:2] == ["b", "c"]


def test_selection_summary_is_the_snapshot_totals():
    snapshot = snap(sample_users())
    summary = summary_get(snapshot)
    assert summary.as_dict() == {
        "users": 12,
        "active": 4,
        "in_flight": 4,
        "requests": sum(range(0, 120, 10)),
        "errors": 12,
        "avg_latency_ms": 12.5,
    }
    assert summary.sources == [
        {"name": "s", "kind": "t", "state": "ok", "users": 0, "last_success": None, "last_error": None}
    ]
