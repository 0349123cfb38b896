"""Export rows (async iterators over sync ORM): the list page's view, and one user's raw samples.

The list export reads the page's own parameters (``ViewSpec``) and chooses its users with the
page's own ``selection.view_filter`` (or the ended users with ``ended_select``), so the file
holds exactly the page's users in the page's order, every page of them, streamed in chunks.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from usermetrics.clock import utcnow
from usermetrics.conf import get_config
from usermetrics.figures import FIGURES, LLM_COLUMNS, llm_cells, row_figures
from usermetrics.history.ended import ended_iter, ended_select
from usermetrics.history.flags import Flag, users_flags
from usermetrics.history.query import WindowStats, window_stats
from usermetrics.history.series import user_samples
from usermetrics.metrics import PerUserResourceUsage
from usermetrics.pricing import aprice_table_get
from usermetrics.selection import ENDED, ViewSpec, view_filter
from usermetrics.snapshot import is_active
from usermetrics.windows import window_choose, window_length

from .live import board_get
from .names import labels_aget
from .spend import board_window_order, ended_window_order, is_window_sort

# Columns of the list export, in order (the HTML list shows the same facts).
USER_COLUMNS = (
    "user_id", "state", "sources", "created_at", "last_activity", "ended_at", "in_flight", "total_requests",
    "error_count", "avg_latency_ms", "p50_ms", "p95_ms", "p99_ms", "queued", "functions", "function_groups",
    "exit_stack", "window", "requests_per_min", "error_rate", "window_latency_ms", "flags", *LLM_COLUMNS,
)  # fmt: skip
# The NAT companions' figures of a user that none reports (empty in the CSV, null in the JSON).
NO_FIGURES = dict.fromkeys(FIGURES)
NO_LLM = (None,) * len(LLM_COLUMNS)
HISTORY_COLUMNS = (
    "ts", "life", "in_flight", "total_requests", "error_count", "avg_latency_ms", "functions", "function_groups",
    "exit_stack", "requests", "errors", "window_latency_ms",
)  # fmt: skip
CHUNK = 1000


@dataclass
class Export:
    """What an export streams: its columns, its rows and a file name (without the extension)."""

    columns: Sequence[str]
    rows: AsyncIterator[Sequence[Any]]
    filename: str


def _user_row(
    usage: PerUserResourceUsage,
    *,
    state: str,
    sources: Sequence[str],
    window: str,
    stats: WindowStats | None,
    flags: Sequence[Flag] = (),
    ended_at: datetime | None = None,
    figures: Mapping[str, float | int | None] | None = None,
    llm: tuple[Any, ...] = NO_LLM,
) -> tuple[Any, ...]:
    s, r, m = usage.session, usage.requests, usage.memory
    f = figures or NO_FIGURES
    return (
        usage.user_id, state, " ".join(sources), s.created_at, s.last_activity, ended_at, s.ref_count,
        r.total_requests, r.error_count, r.avg_latency_ms, f["p50_ms"], f["p95_ms"], f["p99_ms"], f["queued"],
        m.per_user_functions_count,
        m.per_user_function_groups_count, m.exit_stack_size, window if stats is not None else "",
        stats.requests_per_min if stats is not None else None, stats.error_rate if stats is not None else None,
        stats.latency_ms if stats is not None else None, " ".join(f.name for f in flags), *llm,
    )  # fmt: skip


async def users_export(*, spec: ViewSpec) -> Export:
    """The list page's current view (its ``q``, ``state``, ``sort``, ``window``), every page."""
    labels = await labels_aget()
    enabled = get_config().history.enabled
    if spec.state == ENDED:
        pks = await sync_to_async(ended_select)(q=spec.q, sort=spec.sort, labels=labels) if enabled else []
        if enabled and is_window_sort(spec.sort):
            pks = await sync_to_async(ended_window_order)(pks, sort=spec.sort, window=spec.window)
        return Export(USER_COLUMNS, _ended_rows(pks), "users-ended")
    board = board_get()
    prices = await aprice_table_get()
    length = window_length(spec.window)
    positions = view_filter(board, spec, labels=labels)
    if enabled and is_window_sort(spec.sort):  # in the page's order: the history's tokens or cost over the window
        positions = await sync_to_async(board_window_order)(board, positions, sort=spec.sort, window=spec.window)

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        for start in range(0, len(positions), CHUNK):
            chunk = [board.usage_at(i) for i in positions[start : start + CHUNK]]
            ids = [u.user_id for u in chunk]
            now = utcnow()
            stats = await sync_to_async(window_stats)(window=length, user_ids=ids, now=now) if enabled else {}
            flags = await sync_to_async(users_flags)(board, ids, now=now)
            empty = WindowStats(seconds=length.total_seconds())
            for usage in chunk:
                uid = usage.user_id
                yield _user_row(
                    usage,
                    state="active" if is_active(usage) else "idle",
                    sources=board.origins(uid),
                    window=spec.window,
                    stats=stats.get(uid, empty) if enabled else None,
                    flags=flags.get(uid, []),
                    figures=row_figures(board, uid),
                    llm=llm_cells(board.extras_at(board.index[uid]), prices),
                )

    return Export(USER_COLUMNS, rows(), "users")


async def _ended_rows(pks: list[int]) -> AsyncIterator[tuple[Any, ...]]:
    chunks = ended_iter(pks, chunk=CHUNK)
    while True:
        chunk = await sync_to_async(next)(chunks, None)
        if chunk is None:
            return
        for ended in chunk:
            yield _user_row(
                ended.usage, state="ended", sources=ended.sources, window="", stats=None, ended_at=ended.ended_at
            )


def user_history_export(*, user_id: str, window: str | None) -> Export:
    """One user's raw samples over ``window`` (default 24h), oldest first."""
    name = window_choose(window, default="24h")
    start = utcnow() - window_length(name)
    qs = user_samples(user_id=user_id, since=start)

    async def rows() -> AsyncIterator[tuple[Any, ...]]:
        async for s in qs.aiterator(chunk_size=CHUNK):
            latency = round(s.d_latency_ms / s.d_requests, 2) if s.d_requests > 0 else None
            yield (
                s.ts, s.life_number, s.ref_count, s.total_requests, s.error_count, s.avg_latency_ms,
                s.functions, s.groups, s.exit_stack, s.d_requests, s.d_errors, latency,
            )  # fmt: skip

    return Export(HISTORY_COLUMNS, rows(), "history-" + (_UNSAFE_FILENAME.sub("_", user_id)[:80] or "user"))


_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
