"""The companions' figures in the history (sync, no ORM): a sample's extras as a few bytes, deltas, sums.

A user that NAT companions report (``extras.Extras``) writes, with each sample, its latency
histogram's change since the previous sample of the same life, its requests queued now, and the
change of its waiting and running time. They travel in one small binary column (``extras``),
``None`` for users without extras: varints of queued, Δwait and Δrun (whole ms), then a
``(bucket, varint count)`` pair per non-empty bucket of the histogram's change. About a dozen
bytes where four columns would take thirty and more, and the buckets are fixed
(``usermetrics_nat.histogram``), so the changes of any window add up to that window's histogram:
p50, p95 and p99 exact to the bucket, across workers, refreshes and roll-ups.

The reset rule is the lives' (``lives.is_new_life``): a histogram or a time that went backwards
is a new count from zero, never a negative change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import add, sub

from usermetrics_nat.histogram import BUCKETS, EMPTY, Counts, percentiles

from usermetrics.extras import Extras

from .varints import varint_next, varint_put


@dataclass(frozen=True)
class Cumulative:
    """What the recorder remembers of a user's extras as of its latest sample: the base of the next change."""

    latency: Counts
    wait_ms: int  # whole milliseconds: the sum of the written changes is then exactly the last minus the first
    run_ms: int


ZERO = Cumulative(EMPTY, 0, 0)


def cumulative_of(extras: Extras) -> Cumulative:
    """The cumulative figures of ``extras`` as the history counts them."""
    return Cumulative(tuple(extras.latency), round(extras.wait_ms), round(extras.run_ms))


@dataclass
class ExtrasSum:
    """A window's (or one sample's) extras: the histogram of its requests, time waited and run, the most queued."""

    latency: list[int]
    wait_ms: int = 0
    run_ms: int = 0
    queued: int = 0  # the most requests queued at any sample of it (the latest, for one sample)

    @classmethod
    def empty(cls) -> ExtrasSum:
        """Nothing counted yet."""
        return cls([0] * BUCKETS)

    def add(self, other: ExtrasSum) -> None:
        """Add ``other``'s changes (and keep the larger queue)."""
        self.latency = list(map(add, self.latency, other.latency))  # in C: this runs per sample written
        self.wait_ms += other.wait_ms
        self.run_ms += other.run_ms
        self.queued = max(self.queued, other.queued)

    @property
    def requests(self) -> int:
        """Requests counted in the histogram."""
        return sum(self.latency)

    @property
    def percentiles(self) -> tuple[float | None, ...]:
        """p50, p95, p99 of the requests counted (ms; None when none)."""
        return percentiles(self.latency)


def change(new: Cumulative, old: Cumulative | None) -> Cumulative:
    """The change from ``old`` to ``new``: ``old`` None, or anything gone backwards, counts from zero (a new count)."""
    if old is None:
        return new
    d = tuple(map(sub, new.latency, old.latency))  # in C: this runs per sample written
    latency = new.latency if min(d) < 0 else d
    wait = new.wait_ms - old.wait_ms if new.wait_ms >= old.wait_ms else new.wait_ms
    run = new.run_ms - old.run_ms if new.run_ms >= old.run_ms else new.run_ms
    return Cumulative(latency, wait, run)


def sample_extras(new: Cumulative, base: Cumulative | None, queued: int) -> tuple[bytes, ExtrasSum]:
    """A sample's extras column and what it counts: the change from ``base`` (None: not known, a baseline)."""
    d = change(new, base) if base is not None else ZERO
    return encode(d, queued), ExtrasSum(list(d.latency), d.wait_ms, d.run_ms, queued)


def encode(d: Cumulative, queued: int) -> bytes:
    """A sample's extras column: varints queued, Δwait, Δrun, then (bucket, varint count) per non-empty bucket."""
    out = bytearray()
    for value in (queued, d.wait_ms, d.run_ms):
        varint_put(max(0, value), out)
    for i, n in enumerate(d.latency):
        if n:
            out.append(i)
            varint_put(n, out)
    return bytes(out)


def _add_into(raw: bytes | memoryview, latency: list[int]) -> tuple[int, int, int]:
    """Add the histogram change of one ``encode``'d column into ``latency`` in place; its (queued, Δwait, Δrun).

    One pass over the bytes, no list per row: a window of a thousand users is tens of thousands of rows.
    """
    data = bytes(raw)
    values: list[int] = []
    pos, end = 0, len(data)
    index = -1
    while pos < end:
        if index < 0 and len(values) == 3:
            index = data[pos]
            pos += 1
            if index >= BUCKETS:
                raise ValueError(f"not a histogram bucket: {index}")
            continue
        value, pos = varint_next(data, pos, "extras")
        if index < 0:
            values.append(value)
        else:
            latency[index] += value
            index = -1
    if len(values) < 3 or index >= 0:
        raise ValueError("a truncated extras column")
    return values[0], values[1], values[2]


def decode(raw: bytes | memoryview) -> ExtrasSum:
    """``encode``'s bytes back as a sum of one sample; ValueError for bytes it did not write."""
    latency = [0] * BUCKETS
    queued, wait, run = _add_into(raw, latency)
    return ExtrasSum(latency, wait, run, queued)


def summed(raws: Iterable[bytes | memoryview | None]) -> ExtrasSum | None:
    """The sum of stored extras columns, the most queued of them (None when none holds any: no companion)."""
    total: ExtrasSum | None = None
    for raw in raws:
        if raw is None:
            continue
        if total is None:
            total = ExtrasSum.empty()
        queued, wait, run = _add_into(raw, total.latency)
        total.wait_ms += wait
        total.run_ms += run
        total.queued = max(total.queued, queued)
    return total


def encode_sum(total: ExtrasSum) -> bytes:
    """A sum (a roll-up hour, a refresh's totals) in the column's form; ``queued`` is its most queued."""
    return encode(Cumulative(tuple(total.latency), total.wait_ms, total.run_ms), total.queued)


# The recorder's histogram of every request it recorded, as the producer puts it in ``Board.meta``
# (numbers only: the board's meta travels as floats) and ``/metrics`` reads it back.
META_BUCKET = "observed_histogram:"  # + bucket index: that bucket's count (not cumulative)
META_SUM = "observed_histogram_ms"


def histogram_meta(counts: Iterable[int] | None, sum_ms: float) -> dict[str, float]:
    """The meta keys of the recorder's histogram ({} before it recorded one)."""
    if counts is None:
        return {}
    return {**{f"{META_BUCKET}{i}": float(n) for i, n in enumerate(counts)}, META_SUM: sum_ms}


def histogram_of_meta(meta: Mapping[str, float]) -> tuple[Counts, float] | None:
    """The recorder's histogram and NAT's latency sum of its requests, read back from a board's meta (None: none)."""
    if META_SUM not in meta:
        return None
    return tuple(int(meta.get(f"{META_BUCKET}{i}", 0)) for i in range(BUCKETS)), float(meta[META_SUM])
