"""Source health over time: rows per state change or sample interval, shares of a window, retention, the page."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.history.rollup import prune
from usermetrics.history.sources import SourceLog, sources_history
from usermetrics.models import SourceSample

pytestmark = pytest.mark.django_db


def _with(snap, **health):
    return replace(snap, sources=[replace(snap.sources[0], **health)])


def test_history_sources_writes_changes_at_once_and_steady_states_per_interval(caplog):
    log = SourceLog(sample_interval=60)
    base = snapshot(T0, [usage("a")])
    caplog.set_level(logging.INFO, logger="usermetrics.history.sources")
    assert log.record(_with(base, last_duration_ms=3.5, last_body_bytes=812)) == 1
    assert log.record(_with(replace(base, timestamp=T0 + timedelta(seconds=2)))) == 0  # steady, within the interval
    down = _with(replace(base, timestamp=T0 + timedelta(seconds=4)), state="stale", last_error="timed out after 5 s")
    assert log.record(down) == 1  # a change is written at once
    assert log.record(_with(replace(base, timestamp=T0 + timedelta(seconds=6)))) == 1  # and back
    assert log.record(_with(replace(base, timestamp=T0 + 2 * MIN))) == 1  # a steady state, once per interval
    rows = list(SourceSample.objects.order_by("ts").values_list("state", "body_bytes", "error"))
    assert rows == [("ok", 812, ""), ("stale", None, "timed out after 5 s"), ("ok", None, ""), ("ok", None, "")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # Each state change once, at WARNING (not every refresh of a steady state).
    assert warnings == ["Source demo is stale (was ok): timed out after 5 s", "Source demo is ok (was stale)"]


def test_history_sources_shares_of_a_window_carry_the_state_in():
    log = SourceLog(sample_interval=60)
    base = snapshot(T0, [])
    log.record(_with(base, state="down", last_error="refused"))
    log.record(_with(replace(base, timestamp=T0 + 30 * MIN)))  # ok from half past
    timeline = sources_history(window=timedelta(hours=1), now=T0 + 60 * MIN)["demo"]
    assert timeline.shares == {"ok": 0.5, "stale": 0.0, "down": 0.5}
    # A window that starts after the last change still knows the state it starts in.
    later = sources_history(window=10 * MIN, now=T0 + 60 * MIN)["demo"]
    assert later.shares["ok"] == 1.0 and later.points == []


def test_history_sources_are_pruned_with_the_raw_samples():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a")]))
    rec.record(snapshot(T0 + 8 * timedelta(days=1), [usage("a")]))
    assert SourceSample.objects.count() == 2
    out = prune(now=T0 + 8 * timedelta(days=1), raw_retention=timedelta(days=7), rollup_retention=timedelta(days=90))
    assert out["sources"] == 1 and SourceSample.objects.count() == 1
