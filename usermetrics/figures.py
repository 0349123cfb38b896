"""The NAT companions' figures of a user as the faces show them (sync, no Django), read off a published board.

One home for what the list, the detail page, the frames, the JSON API and the exports say of a
user's extras (``extras.Extras``, published as ``Board.extras_of``): the list's four figures
(p50, p95, p99 latency and requests queued now) and the whole document with its buckets' bounds
and the share of time spent waiting. A user no companion reports has no figures (None): the
pages write ``humanize.NO_VALUE``, the API ``null``, so "no companion" never reads as "0 queued".
"""

from __future__ import annotations

from typing import Any

from usermetrics_nat.histogram import BOUNDS_MS

from usermetrics.board import Board

# The list's figures, named as the board's extras columns (and sort keys) are.
FIGURES = ("p50_ms", "p95_ms", "p99_ms", "queued")


def row_figures(board: Board, user_id: str) -> dict[str, float | int | None] | None:
    """p50/p95/p99 latency (ms; None before the first request counted) and requests queued now.

    None when no NAT companion reports the user (a plain NAT server, or an ended user).
    """
    doc = board.extras_of(user_id)
    if doc is None:
        return None
    latency = doc["latency"]
    return {
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "p99_ms": latency["p99_ms"],
        "queued": doc["queue"]["queued"],
    }


def wait_share(wait_ms: float, run_ms: float) -> float | None:
    """The share of its requests' time a user spent waiting on its semaphore (None: no time counted yet)."""
    total = wait_ms + run_ms
    return round(wait_ms / total, 4) if total > 0 else None


def extras_public(doc: dict[str, Any]) -> dict[str, Any]:
    """An extras document (``Extras.as_dict``) as the API and the user frame carry it.

    The buckets name their bounds (``gt_ms`` < latency <= ``le_ms``; ``le_ms`` null for the last,
    everything slower) instead of the companion's bucket index, so a client needs no table of
    bounds; the queue adds ``wait_share``, the share of time spent waiting.
    """
    latency, queue = doc["latency"], doc["queue"]
    buckets = [
        {"gt_ms": BOUNDS_MS[i - 1] if i else 0, "le_ms": BOUNDS_MS[i] if i < len(BOUNDS_MS) else None, "count": n}
        for i, n in latency.get("buckets", [])
    ]
    return {
        **doc,  # keys a newer companion adds pass through as they are
        "latency": {**latency, "buckets": buckets},
        "queue": {**queue, "wait_share": wait_share(queue["wait_ms"], queue["run_ms"])},
        "workers": list(doc.get("workers", [])),
    }


def user_extras(board: Board, user_id: str) -> dict[str, Any] | None:
    """The user's whole extras document for the faces (``extras_public``), or None without a companion."""
    doc = board.extras_of(user_id)
    return None if doc is None else extras_public(doc)
