"""Latency histograms with fixed buckets (sync, no Django, no NAT): counts that add up exactly.

Every worker counts each request of a user's per-user workflow into the same buckets, so the
histograms of several workers and several refreshes add up exactly (and subtract: the requests
of a window are the later cumulative counts minus the earlier). Percentiles are read off the
counts by interpolating inside the bucket that holds the rank: exact to the bucket, which is at
most 1.5 times as wide as its lower bound here (the Prometheus way).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

# Upper bounds (inclusive) of the buckets, in milliseconds; one more bucket holds everything slower.
BOUNDS_MS: tuple[float, ...] = (
    1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 50_000, 75_000,
    100_000, 150_000, 200_000, 300_000,
)  # fmt: skip
BUCKETS = len(BOUNDS_MS) + 1
EMPTY: tuple[int, ...] = (0,) * BUCKETS
QUANTILES = (0.5, 0.95, 0.99)  # p50, p95, p99: what pages, the API and alerts show

Counts = tuple[int, ...]


def bucket_of(latency_ms: float) -> int:
    """The bucket a latency falls in (the first whose upper bound it does not exceed)."""
    return bisect_left(BOUNDS_MS, latency_ms)


def added(*histograms: Sequence[int]) -> Counts:
    """The sum of histograms, bucket by bucket (workers merged, or refreshes accumulated)."""
    return tuple(map(sum, zip(*histograms, strict=True))) if histograms else EMPTY


def since(later: Sequence[int], earlier: Sequence[int]) -> Counts:
    """The requests counted between two cumulative histograms of one life (never negative)."""
    return tuple(max(0, a - b) for a, b in zip(later, earlier, strict=True))


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of the latencies counted, in ms; None when nothing was counted.

    Linear inside the bucket that holds the rank (from its lower bound, 0 for the first). The
    last bucket has no upper bound: a quantile that falls in it is said as that bucket's lower
    bound (the pages say "over" it).
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i >= len(BOUNDS_MS):
                return float(BOUNDS_MS[-1])
            low = BOUNDS_MS[i - 1] if i else 0.0
            return round(low + (BOUNDS_MS[i] - low) * max(0.0, rank - seen) / n, 2)
        seen += n
    return float(BOUNDS_MS[-1])


def percentiles(counts: Sequence[int]) -> tuple[float | None, ...]:
    """p50, p95 and p99 of ``counts`` (``QUANTILES``)."""
    return tuple(quantile(counts, q) for q in QUANTILES)


def sparse(counts: Sequence[int]) -> list[list[int]]:
    """The non-empty buckets as ``[index, count]`` pairs (what travels and what is stored)."""
    return [[i, n] for i, n in enumerate(counts) if n]


def dense(pairs: Iterable[Sequence[int]]) -> Counts:
    """Counts from ``sparse`` pairs; ValueError for an index out of range or a negative count."""
    out = [0] * BUCKETS
    for i, n in pairs:
        if not 0 <= i < BUCKETS or n < 0:
            raise ValueError(f"not a histogram bucket: [{i}, {n}]")
        out[i] += n
    return tuple(out)
