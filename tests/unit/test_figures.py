"""The companions' figures as the faces show them: read off the board, None without a companion."""

from __future__ import annotations

from tests.support.factories import board_of, extras_of, record
from usermetrics.figures import extras_public, row_figures, user_extras, wait_share


def test_figures_row_figures_of_a_companion_user_and_none_for_others():
    board = board_of(
        [record("ada"), record("bob")],
        extras={"ada": extras_of([10.0] * 90 + [400.0] * 10, queued=2, max_concurrency=8)},
    )
    figures = row_figures(board, "ada")
    assert figures is not None and figures["queued"] == 2
    assert figures["p50_ms"] < 15 < 300 < figures["p95_ms"] <= figures["p99_ms"] <= 500
    assert row_figures(board, "bob") is None  # no companion: no figures, not zeros
    assert row_figures(board, "nobody") is None


def test_figures_row_figures_before_the_first_request_has_no_percentile_but_a_queue():
    board = board_of([record("ada")], extras={"ada": extras_of([], queued=1, max_concurrency=1)})
    assert row_figures(board, "ada") == {"p50_ms": None, "p95_ms": None, "p99_ms": None, "queued": 1}


def test_figures_extras_public_names_bucket_bounds_and_the_waiting_share():
    board = board_of(
        [record("ada")],
        extras={"ada": extras_of([0.5, 12.0, 12.0, 10**9], wait_ms=30.0, run_ms=90.0, workers=("h:1", "h:2"))},
    )
    doc = user_extras(board, "ada")
    assert doc is not None
    assert doc["latency"]["requests"] == 4
    assert doc["latency"]["buckets"] == [
        {"gt_ms": 0, "le_ms": 1, "count": 1},
        {"gt_ms": 10, "le_ms": 15, "count": 2},
        {"gt_ms": 300_000, "le_ms": None, "count": 1},  # slower than the last bound
    ]
    assert doc["queue"]["wait_share"] == 0.25 and doc["queue"]["wait_ms"] == 30.0
    assert doc["workers"] == ["h:1", "h:2"]
    assert user_extras(board, "nobody") is None


def test_figures_wait_share_without_time_is_none():
    assert wait_share(0.0, 0.0) is None
    assert wait_share(0.0, 5.0) == 0.0
    raw = {"latency": {"p50_ms": None, "p95_ms": None, "p99_ms": None, "requests": 0, "buckets": []}}
    queue = {"queued": 0, "max_concurrency": 8, "wait_ms": 0.0, "run_ms": 0.0}
    doc = extras_public({**raw, "queue": queue, "tool_calls": 3})
    assert doc["queue"]["wait_share"] is None and doc["workers"] == [] and doc["latency"]["buckets"] == []
    assert doc["tool_calls"] == 3  # what a newer companion adds passes through
