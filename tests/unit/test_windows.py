"""Windows: one rule for choosing a named window, its length and its name."""

from __future__ import annotations

from datetime import timedelta

from usermetrics.windows import CHART_WINDOWS, RATE_WINDOWS, window_choose, window_length, window_name


def test_windows_one_rule_for_a_window():
    # An unknown window falls back to the default everywhere (pages, feed, API) and is said back.
    assert window_choose("24h", RATE_WINDOWS) == "24h"
    assert window_choose("7d", RATE_WINDOWS) == "1h"  # not a rate window
    assert window_choose("bogus", CHART_WINDOWS, default="24h") == "24h"
    assert window_choose(None) == "1h"
    assert window_length("15m") == timedelta(minutes=15) and window_name(timedelta(days=7)) == "7d"
    assert window_name(timedelta(seconds=90)) == "90s"
