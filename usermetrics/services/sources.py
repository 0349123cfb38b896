"""The sources (sync ORM, with async doors): the sources page and its document, and a one-off check of every source."""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from usermetrics.conf import get_config
from usermetrics.history.sources import SourceTimeline, sources_history
from usermetrics.publish.assembly import monitor_build
from usermetrics.snapshot import Snapshot
from usermetrics.windows import CHART_WINDOWS, window_choose, window_length

from .live import board_get


def sources_page_get(*, window: str | None, history: bool = True) -> dict[str, Any]:
    """Every source of the latest board with its health now and, with the history on, over ``window``.

    Sources the history remembers but the board no longer has (removed from the settings) are
    left out: the page is about the sources being read now. ``history=False``: the health now
    only, as with the history off (the page while the database is unreachable).
    """
    name = window_choose(window, CHART_WINDOWS)
    enabled = history and get_config().history.enabled
    timelines = sources_history(window=window_length(name)) if enabled else {}
    sources = []
    for health in board_get().sources:
        timeline = timelines.get(health.name, SourceTimeline(health.name))
        sources.append({**health.as_dict(), "history": {"points": timeline.points, "shares": timeline.shares}})
    return {"window": name, "history_enabled": enabled, "sources": sources}


async def sources_doc(*, window: str | None) -> dict[str, Any]:
    """``sources_page_get`` for the JSON API (the database is read in a thread)."""
    return await sync_to_async(sources_page_get)(window=window)


async def sources_check() -> Snapshot | None:
    """Refresh the configured sources once with a monitor of its own (None: no source configured).

    A check only reads: nothing is recorded or published, and no running producer is disturbed.
    """
    monitor = monitor_build()
    if not monitor.sources:
        return None
    try:
        return await monitor.refresh()
    finally:
        await monitor.aclose()
