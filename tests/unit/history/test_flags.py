"""Lifecycle flags: each rule on hand-made users, and every user's flags from the recorded window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.history_helpers import MIN, T0, recorder, snapshot, usage
from usermetrics.conf import FlagsConfig
from usermetrics.history.flags import FLAG_NAMES, user_flags, users_flags
from usermetrics.history.query import WindowStats

CFG = FlagsConfig(idle_after=60, stuck_after=300, rising_min=3, error_rate=0.2, error_min_requests=5, window="1h")


def test_history_flags_idle_says_when_the_sources_evict():
    idle = usage("idle", last=T0 - 10 * MIN)
    [flag] = user_flags(idle, stats=WindowStats(), evicted_at=T0 + 20 * MIN, now=T0, config=CFG)
    assert (flag.name, flag.label) == ("idle", "idle 10 min, evicted in about 20 min")
    [soon] = user_flags(idle, stats=WindowStats(), evicted_at=T0 + timedelta(seconds=30), now=T0, config=CFG)
    assert soon.label == "idle 10 min, evicted in under a minute"
    [unknown] = user_flags(idle, stats=WindowStats(), now=T0, config=CFG)
    assert unknown.label == "idle 10 min"
    assert user_flags(usage("fresh", last=T0 - 30 * timedelta(seconds=1)), now=T0, config=CFG) == []


def test_history_flags_stuck_rising_erroring():
    stuck = usage("stuck", ref=2, last=T0 - 10 * MIN)
    [flag] = user_flags(stuck, now=T0, config=CFG)
    assert flag.name == "stuck" and "2 request(s) in flight" in flag.detail and "threshold 5 min" in flag.detail
    busy = usage("busy", ref=1, last=T0, total=100, errors=0)
    grow = WindowStats(requests=10, errors=5, exit_stack_growth=4)
    flags = user_flags(busy, stats=grow, now=T0, config=CFG)
    assert [f.name for f in flags] == ["rising", "erroring"]
    assert "5 of 10 requests failed over the last 1h" in flags[1].detail
    # Below the minimum number of requests an error share means nothing.
    assert user_flags(busy, stats=WindowStats(requests=2, errors=2), now=T0, config=CFG) == []
    # Without history the lifetime share counts.
    failing = usage("failing", ref=1, last=T0, total=10, errors=5)
    assert [f.name for f in user_flags(failing, now=T0, config=CFG)] == ["erroring"]
    assert FLAG_NAMES == ("idle", "stuck", "rising", "erroring")


@pytest.mark.django_db
def test_history_flags_from_recorded_window():
    rec = recorder()
    rec.record(snapshot(T0, [usage("a", total=0, stack=1)]))
    current = [usage("a", total=10, errors=5, stack=6, ref=1, last=T0 + MIN)]
    rec.record(snapshot(T0 + MIN, current))
    flags = users_flags(snapshot(T0 + MIN, current), now=T0 + MIN)
    assert [f.name for f in flags["a"]] == ["rising", "erroring"]
    assert users_flags(snapshot(T0 + MIN, current), ["nobody"], now=T0 + MIN) == {}


def test_history_flags_idle_and_the_lifecycle_words_say_the_same_eviction():
    from usermetrics.humanize import lifecycle_words
    from usermetrics.merging import merge
    from usermetrics.snapshot import SourceHealth

    # One user on two sources that evict idle users after 30 and after 10 minutes.
    now = T0
    early = usage("ada", last=now - 10 * MIN)
    later = usage("ada", last=now - 5 * MIN)
    sources = [
        SourceHealth(name="a", kind="t", state="ok", per_user_workflow_timeout=1800),
        SourceHealth(name="b", kind="t", state="ok", per_user_workflow_timeout=600),
    ]
    snapshot = merge([("a", [early]), ("b", [later])], seq=1, timestamp=now, sources=sources)
    evicted_at = snapshot.evicted_at("ada")
    assert evicted_at == now + 20 * MIN  # the later of the two: a keeps it until 12:20
    [flag] = users_flags(snapshot, ["ada"], now=now, stats={})["ada"]
    words = lifecycle_words(snapshot.by_id["ada"], now, evicted_at, stuck_after=300)
    assert flag.label == "idle 5 min, evicted in about 20 min"
    assert words == "idle for 5 min, evicted in about 20 min"
