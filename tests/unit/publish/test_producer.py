"""The producer's flag tracker: window stats read in a thread of its own, the last ones serve while reads fail."""

from __future__ import annotations

import logging
import threading

from tests.support.factories import board_of
from tests.support.history_helpers import T0, snapshot, usage
from usermetrics.history.query import WindowStats
from usermetrics.publish import producer
from usermetrics.publish.producer import FlagTracker


async def test_publish_producer_flag_tracker_keeps_the_last_stats_while_reads_fail(monkeypatch, caplog):
    stats = {"a": WindowStats()}
    down = RuntimeError("database down")
    answers: list[object] = [stats, down, down]
    threads: list[str] = []

    def read(user_ids, *, now):
        threads.append(threading.current_thread().name)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    used: list[object] = []
    monkeypatch.setattr(producer, "flag_stats", read)
    monkeypatch.setattr(producer, "flagged", lambda snap, board, stats, *, now: used.append(stats) or {})
    tracker = FlagTracker(every=0.0)  # every refresh reads the stats
    users = [usage("a")]
    with caplog.at_level(logging.WARNING, logger=producer.__name__):
        for _ in range(3):
            await tracker.flags(snapshot(T0, users), board_of(users))
    await tracker.aclose()
    assert answers == []  # three reads: the refresh waited for each
    assert len(used) == 3 and all(u is stats for u in used)  # the last stats served through the failures
    assert threads and all(name.startswith("usermetrics-flags") for name in threads)
    assert [r.levelno for r in caplog.records if r.name == producer.__name__] == [logging.WARNING]  # logged once
