"""The flag tracker: flag stats read in a thread of its own, the last ones serving while reads fail."""

from __future__ import annotations

import logging
import threading

from usermetrics_nat.histogram import BUCKETS

from tests.support.factories import board_of
from tests.support.history_helpers import T0, snapshot, usage
from usermetrics.history.latency import ExtrasSum
from usermetrics.history.query import WindowStats
from usermetrics.publish import flag_tracker
from usermetrics.publish.flag_tracker import FlagTracker


async def test_publish_flag_tracker_keeps_the_last_stats_while_reads_fail(monkeypatch, caplog):
    stats = {"a": WindowStats()}
    down = RuntimeError("database down")
    answers: list[object] = [stats, down, down]
    threads: list[str] = []

    def read(user_ids, *, now, percentiles):
        threads.append(threading.current_thread().name)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    used: list[object] = []
    monkeypatch.setattr(flag_tracker, "flag_stats", read)
    monkeypatch.setattr(flag_tracker, "flagged", lambda snap, board, stats, *, now: used.append(stats) or {})
    tracker = FlagTracker(every=0.0)  # every refresh reads the stats
    users = [usage("a")]
    with caplog.at_level(logging.WARNING, logger=flag_tracker.__name__):
        for _ in range(3):
            await tracker.flags(snapshot(T0, users), board_of(users))
    await tracker.aclose()
    assert answers == []  # three reads: the refresh waited for each
    assert len(used) == 3 and all(u is stats for u in used)  # the last stats served through the failures
    assert threads and all(name.startswith("usermetrics-flags") for name in threads)
    assert [r.levelno for r in caplog.records if r.name == flag_tracker.__name__] == [logging.WARNING]  # logged once


async def test_publish_flag_tracker_reads_the_windowed_p95_as_soon_as_a_rule_needs_it(monkeypatch):
    """Before a p95 rule is known the tracker sums no histogram and says it does not know (None, not "nobody");
    the refresh after a rule asks for them reads them, not the next read 30 s on."""
    summed: list[bool] = []

    def read(user_ids, *, now, percentiles):
        summed.append(percentiles)
        return (
            {"a": WindowStats(extras=ExtrasSum([0, 0, 5] + [0] * (BUCKETS - 3)))}
            if percentiles
            else {"a": WindowStats()}
        )

    monkeypatch.setattr(flag_tracker, "flag_stats", read)
    monkeypatch.setattr(flag_tracker, "flagged", lambda snap, board, stats, *, now: {})
    tracker = FlagTracker(every=3600.0)  # one read an hour, unless a rule needs the percentiles
    users = [usage("a")]
    await tracker.flags(snapshot(T0, users), board_of(users))
    assert tracker.latency_p95() is None and summed == [False]
    tracker.percentiles = True  # the alert engine found an enabled user_latency_p95 rule
    await tracker.flags(snapshot(T0, users), board_of(users))
    assert summed == [False, True] and set(tracker.latency_p95()) == {"a"}
    await tracker.flags(snapshot(T0, users), board_of(users))
    assert summed == [False, True]  # then once an hour again
    await tracker.aclose()


async def test_publish_flag_tracker_a_slow_read_does_not_hold_the_refresh_the_next_one_takes_it(monkeypatch):
    # At a million users one read of every user's window stats can take longer than a refresh: the
    # refresh waits so long only (``wait``), goes on with the stats it has, and a later refresh takes
    # the read's stats once it is done.
    release = threading.Event()
    first, second = {"a": WindowStats()}, {"a": WindowStats(errors=1)}
    answers = [first, second, second]

    def read(user_ids, *, now, percentiles):
        answer = answers.pop(0)
        if answer is second:
            release.wait(timeout=30)  # a slow read
        return answer

    used: list[object] = []
    monkeypatch.setattr(flag_tracker, "flag_stats", read)
    monkeypatch.setattr(flag_tracker, "flagged", lambda snap, board, stats, *, now: used.append(stats) or {})
    tracker = FlagTracker(every=0.0, wait=0.05)
    users = [usage("a")]
    await tracker.flags(snapshot(T0, users), board_of(users))  # a quick read: waited for
    await tracker.flags(snapshot(T0, users), board_of(users))  # the slow one: not waited for past 0.05 s
    assert used == [first, first]
    release.set()
    await tracker.aclose()  # the slow read ends
    await tracker.flags(snapshot(T0, users), board_of(users))
    assert used[-1] is second  # the read's stats, once done
    await tracker.aclose()
