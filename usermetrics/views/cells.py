"""The text of the user pages' cells and panels (sync): a list row, the detail's figures, rates, coverage, thresholds.

Made in Python, not in the template: a hundred rows of fifteen cells are most of a page's work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.urls import reverse

from usermetrics import humanize, services
from usermetrics.conf import get_config
from usermetrics.snapshot import is_active
from usermetrics.templatetags.usermetrics import iso, utc
from usermetrics.windows import window_length

from .context import time_cell
from .spend import spend_cells


def table_row(row: services.Row, labels: Mapping[str, str], now: datetime, currency: str) -> dict[str, Any]:
    """One row of the user table with every text already made.

    A hundred rows of fifteen cells are most of a page's work; text made here skips the template
    engine's lookups and number localization for each cell.
    """
    u, s, r, m = row.usage, row.usage.session, row.usage.requests, row.usage.memory
    active = is_active(u)
    state = "ended" if row.ended else "active" if active else "idle"
    return {
        "user_id": u.user_id,
        "href": reverse("usermetrics:user-detail", args=[u.user_id]),
        "display": humanize.user_display(u.user_id, labels),
        "class": "um-ended" if row.ended else "um-active" if active else "",
        "state": state,
        "ended": {"exact": utc(row.ended.ended_at), "ago": row.ended.ended_ago(now)} if row.ended else None,
        "flags": row.window.flags if row.window else [],
        "rates": {**rate_words(row.window.stats), **spend_cells(row.window.tokens, currency)} if row.window else None,
        "sparkline": row.window.sparkline if row.window else None,
        "created_at": time_cell(s.created_at, now),
        "last_activity": time_cell(s.last_activity, now),
        "ref_count": str(s.ref_count),
        "total_requests": str(r.total_requests),
        "active_requests": str(r.active_requests),
        "avg_latency_ms": humanize.latency_words(r.avg_latency_ms),
        "error_count": str(r.error_count),
        "has_errors": r.error_count > 0,
        "per_user_functions_count": str(m.per_user_functions_count),
        "per_user_function_groups_count": str(m.per_user_function_groups_count),
        "exit_stack_size": str(m.exit_stack_size),
        **_figure_cells(row.figures),
    }


def _figure_cells(figures: Mapping[str, Any] | None) -> dict[str, Any]:
    """The NAT companions' cells of a row: p95 (with p50/p95/p99 on hover) and queued; ``NO_VALUE`` without them."""
    f = figures or {}
    return {
        "p95_ms": humanize.percentile_words(f.get("p95_ms")),
        "p95_ms_title": humanize.percentiles_title(f) if figures else "",
        "queued": humanize.figure_count(f.get("queued")),
        "has_queue": bool(f.get("queued")),
    }


def extras_panels(extras: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The detail page's Latency and Queue panels and its workers, in words (figures.js writes the same live)."""
    if extras is None:
        return None
    latency, queue, workers = extras["latency"], extras["queue"], extras["workers"]
    top = max((b["count"] for b in latency["buckets"]), default=0)
    share = queue["wait_share"]
    return {
        "p50_ms": humanize.percentile_words(latency["p50_ms"]),
        "p95_ms": humanize.percentile_words(latency["p95_ms"]),
        "p99_ms": humanize.percentile_words(latency["p99_ms"]),
        "requests": str(latency["requests"]),
        "buckets": [
            {"words": humanize.bucket_words(b["gt_ms"], b["le_ms"]), "count": b["count"], "top": top}
            for b in latency["buckets"]
        ],
        "queued": str(queue["queued"]),
        "saturated": queue["queued"] > 0,
        "max_concurrency": humanize.concurrency_words(queue["max_concurrency"]),
        "wait_ms": humanize.latency_fit(queue["wait_ms"]),
        "run_ms": humanize.latency_fit(queue["run_ms"]),
        "wait_share": humanize.NO_VALUE if share is None else humanize.share_words(share),
        "workers": workers,
        "workers_words": humanize.workers_words(len(workers)) if workers else "",
    }


def rate_words(stats: Any) -> dict[str, str]:
    """A window's rates in words: requests/min, error rate, mean latency and p95 (``WindowStats``)."""
    return humanize.rates_words(stats.requests_per_min, stats.error_rate, stats.latency_ms, stats.percentiles[1])


def coverage(window: str, span: Any) -> dict[str, Any]:
    """What the rates cover, in words and as data for the script (which keeps it current)."""
    whole = window_length(window).total_seconds()
    return {
        "words": humanize.coverage_words(window, span.seconds, span.since, whole),
        "short": window if span.seconds >= whole - 1 else humanize.duration_words(span.seconds),
        "since": iso(span.since) if span.since else "",
    }


def flag_thresholds() -> str:
    """The lifecycle flags' thresholds in words (the detail page explains what each flag means)."""
    cfg = get_config().flags
    return (
        f"idle after {humanize.duration_words(cfg.idle_after)} without activity;"
        f" stuck after {humanize.duration_words(cfg.stuck_after)} with requests in flight"
        f" but no activity; rising when the exit stack or functions grow by {cfg.rising_min} or more"
        f" over {cfg.window}; erroring when {cfg.error_rate:.0%} or more of at least"
        f" {cfg.error_min_requests} requests over {cfg.window} failed."
    )
