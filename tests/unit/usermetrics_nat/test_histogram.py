"""The companion's latency histogram: fixed buckets that add and subtract exactly, percentiles read off them."""

from __future__ import annotations

import pytest
from usermetrics_nat.histogram import (
    BOUNDS_MS,
    BUCKETS,
    EMPTY,
    added,
    bucket_of,
    dense,
    percentiles,
    quantile,
    since,
    sparse,
)


def counts(**by_bucket: int) -> tuple[int, ...]:
    """A histogram with ``b<index>=count`` buckets set."""
    out = [0] * BUCKETS
    for name, n in by_bucket.items():
        out[int(name[1:])] = n
    return tuple(out)


def test_histogram_buckets_are_inclusive_upper_bounds():
    assert bucket_of(0) == 0 and bucket_of(1) == 0
    assert bucket_of(1.0001) == 1 and bucket_of(1.5) == 1
    assert bucket_of(100) == BOUNDS_MS.index(100)
    assert bucket_of(BOUNDS_MS[-1]) == len(BOUNDS_MS) - 1
    assert bucket_of(10 * BOUNDS_MS[-1]) == BUCKETS - 1 == len(BOUNDS_MS)


def test_histogram_workers_add_and_windows_subtract_exactly():
    a, b = counts(b3=2, b10=1), counts(b3=1, b20=4)
    assert added(a, b) == counts(b3=3, b10=1, b20=4)
    assert added() == EMPTY
    later = added(a, counts(b10=5))
    assert since(later, a) == counts(b10=5)
    assert since(a, later) == EMPTY  # never negative


def test_histogram_quantiles_interpolate_inside_the_bucket():
    assert quantile(EMPTY, 0.5) is None
    i = BOUNDS_MS.index(75)  # the bucket (50, 75]
    assert quantile(counts(**{f"b{i}": 100}), 0.5) == 62.5
    assert quantile(counts(**{f"b{i}": 100}), 0.99) == pytest.approx(74.75)
    # 90 fast (<= 1 ms) and 10 slow ((200, 300] ms): p50 among the fast, p95 half-way into the slow bucket.
    slow = BOUNDS_MS.index(300)
    mixed = counts(b0=90, **{f"b{slow}": 10})
    p50, p95, p99 = percentiles(mixed)
    assert p50 == pytest.approx(50 / 90, abs=0.005)  # to the hundredth of a ms
    assert p95 == pytest.approx(250.0)
    assert p99 == pytest.approx(290.0)


def test_histogram_the_open_last_bucket_says_its_lower_bound():
    assert quantile(counts(**{f"b{BUCKETS - 1}": 3}), 0.5) == BOUNDS_MS[-1]


def test_histogram_sparse_round_trip_and_bad_pairs():
    h = counts(b0=1, b7=12, b34=2)
    assert sparse(h) == [[0, 1], [7, 12], [34, 2]]
    assert dense(sparse(h)) == h
    assert dense([]) == EMPTY
    for bad in ([[BUCKETS, 1]], [[-1, 1]], [[3, -2]]):
        with pytest.raises(ValueError):
            dense(bad)
