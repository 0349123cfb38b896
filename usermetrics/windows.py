"""Windows (sync, no Django): the named spans the dashboard reads rates and charts over, and the rule for a bad one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

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
